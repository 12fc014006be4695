import json

import numpy as np
import pytest

from sparsentk.cli import main


def run(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def test_train_writes_all_outputs(tmp_path, capsys):
    code, out, _ = run(
        ["train", "--n", "32", "--dim", "4", "--width", "256", "--bias", "1.0", "--steps", "5", "--no-progress",
         "--method", "dense", "--out", str(tmp_path)],
        capsys,
    )
    assert code == 0, out
    for name in ("history.csv", "params.npz", "summary.json", "loss.png", "sparsity.png"):
        assert (tmp_path / name).stat().st_size > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["width"] == 256 and summary["config"]["steps"] == 5
    assert summary["final_loss"] <= summary["initial_loss"]
    assert 0 < summary["active_fraction_initial"] < 1
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    with np.load(tmp_path / "params.npz") as params:
        assert params["W"].shape == (256, 4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--width", "0"], "width: expected a positive integer, got 0"),
        (["--lr", "-1"], "lr: expected a positive number"),
        (["--steps", "-2"], "steps: expected an integer >= 0"),
        (["--bias", "nan"], "bias: expected a finite number"),
        (["--data", "/no/such/file.npz"], "--data: expected 'sphere', 'digits' or an existing data file"),
        (["--init", "symmetric", "--width", "5"], "even width"),
    ],
)
def test_bad_arguments_exit_with_one_line(tmp_path, capsys, args, message):
    code, _, err = run(["train", "--no-progress", "--n", "8", "--out", str(tmp_path), *args], capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_help_on_every_command(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and "train" in out
    code, out, _ = run(["train", "--help"], capsys)
    assert code == 0 and "--width" in out
