"""P2's depth-vs-accuracy study on tiny sizes: the network's parameterization written out here, the learning-rate
selection against its own table, the claims' verdicts against the numbers, determinism, resume, the CLI."""

import copy
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from sparsentk.cli import cli  # noqa: E402
from sparsentk.experiments.depth_accuracy import (  # noqa: E402
    P2_ACCURACY,
    build_classifier,
    claim_rows,
    depth_accuracy_study,
    report_blocks,
    resolve_device,
)

TINY = dict(depths=(1, 3), width=16, data="digits", epochs=2, batch_size=200, lr_grid=(0.3, 3.0), selection_steps=2,
            seeds=(0,), threads=1)


@pytest.fixture(scope="module")
def study():
    return depth_accuracy_study(**TINY)


def test_parameterization_written_out():
    """f(x) = √(2/m)·V relu(√(2/m)·W₂ relu(√(2/d)·W₁x)), weights N(0, 1) (P2's network, 10 logits)."""
    net = build_classifier(7, 32, 2, seed=3)
    W1, W2 = (p.detach().numpy().astype(np.float64) for p in net.hidden)
    V = net.head.detach().numpy().astype(np.float64)
    x = np.random.default_rng(0).standard_normal((5, 7))
    h = np.maximum(np.sqrt(2 / 7) * x @ W1.T, 0)
    h = np.maximum(np.sqrt(2 / 32) * h @ W2.T, 0)
    expected = np.sqrt(2 / 32) * h @ V.T
    got = net(torch.from_numpy(x.astype(np.float32))).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert not any(name.endswith("bias") for name, _ in net.named_parameters())  # P2's network has no biases
    # N(0, 1) weights: the sample variance of 32·32 entries is near 1
    assert W2.var() == pytest.approx(1.0, abs=0.15)


def test_selection_and_records(study):
    c = study["config"]
    assert c["train_size"] + c["holdout_size"] == 1437 and c["holdout_size"] == 144
    for run in study["runs"]:
        table = {s["lr"]: s["holdout_loss"] for s in run["selection"]}
        finite = {lr: v for lr, v in table.items() if v is not None}
        assert run["lr"] == min(finite, key=lambda lr: (finite[lr], lr))  # the lowest held-out loss wins
        steps = c["steps_per_epoch"] * c["epochs"]
        assert len(run["loss"]) == steps and len(run["accuracy"]) == c["epochs"]
        for e, mean in enumerate(run["epoch_loss"]):
            assert mean == pytest.approx(np.mean(run["loss"][e * c["steps_per_epoch"]:(e + 1) * c["steps_per_epoch"]]))
        assert 0.0 <= run["accuracy"][-1] <= 1.0
    row = study["per_depth"]["3"]
    assert row["accuracy"] == [study["runs"][1]["accuracy"][-1]]
    assert study["common_lr"]["3"]["1"] == study["runs"][0]["selection"][1]["holdout_loss"]


def test_same_seed_same_numbers_and_resume(study, tmp_path):
    small = TINY | dict(depths=(1,), epochs=1)
    threads = torch.get_num_threads()
    first = depth_accuracy_study(**small, out=tmp_path)
    assert torch.get_num_threads() == threads  # the run's single thread is given back
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = depth_accuracy_study(**small, out=tmp_path)
    assert files[0].stat().st_mtime_ns == stamp  # reused
    fresh = depth_accuracy_study(**small)
    assert again["runs"][0]["loss"] == first["runs"][0]["loss"] == fresh["runs"][0]["loss"]


def fake(accuracy: dict, mean_loss: dict, data: str = "mnist", train_limit=None) -> dict:
    per = {str(d): {"seeds": [0], "accuracy": [accuracy[d] / 100], "lr": [1.0], "mean_loss": [mean_loss[d]],
                    "first_epoch_loss": [mean_loss[d]], "final_epoch_loss": [mean_loss[d]]} for d in accuracy}
    return {"config": {"seeds": [0], "epochs": 5, "train_size": 54000, "data": data, "width": 512,
                       "batch_size": 500, "train_limit": train_limit, "selection_steps": 20},
            "per_depth": per, "common_lr": {"1": {str(d): mean_loss[d] for d in accuracy}}}


def test_claims_follow_the_numbers():
    depths = list(P2_ACCURACY)
    falling = {d: 1.0 / (1 + k) for k, d in enumerate(depths)}
    rows = {r["claim"][:12]: r["verdict"] for r in claim_rows(fake(P2_ACCURACY, falling))}
    assert rows["deeper netwo"] == "reproduced"
    assert rows["MNIST test a"] == "reproduced"
    assert rows["depth helps:"] == "reproduced"
    rising = {d: 1.0 + k for k, d in enumerate(depths)}
    worse = {d: a - (2.0 if d == 10 else 0.0) for d, a in P2_ACCURACY.items()}
    rows = {r["claim"][:12]: r["verdict"] for r in claim_rows(fake(worse, rising))}
    assert rows["deeper netwo"] == "not reproduced"
    assert rows["MNIST test a"] == "not reproduced"  # a 2-point gap on the full set
    quick = {r["claim"][:12]: r["verdict"] for r in claim_rows(fake(worse, rising, train_limit=5000))}
    assert quick["MNIST test a"] == "not comparable at the quick budget"
    flat = {d: 97.0 for d in depths}
    flat[1] = 98.0
    rows = {r["claim"][:12]: r["verdict"] for r in claim_rows(fake(flat, falling))}
    assert rows["depth helps:"] == "not reproduced"


def test_report_blocks(study):
    blocks = report_blocks(study, "depth_accuracy.png")
    kinds = [b[0] for b in blocks]
    assert kinds[:3] == ["h2", "p", "img"] and kinds.count("table") == 2
    multi = copy.deepcopy(study)
    multi["config"]["seeds"] = [0, 1]
    assert report_blocks(multi, None)[-1][0] == "details"


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(depths=()), "depths"), (dict(depths=(0,)), "depths"), (dict(lr_grid=(-1.0,)), "lr_grid"),
    (dict(holdout=1.5), "holdout"), (dict(epochs=0), "epochs"), (dict(device="tpu"), "device"),
    (dict(data="cifar"), "data"), (dict(seeds=()), "seeds"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        depth_accuracy_study(**(TINY | kwargs))


def test_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device: 'cuda' requested but CUDA is not available"):
            resolve_device("cuda")


def test_cli(tmp_path):
    runner = CliRunner()
    out = tmp_path / "da"
    r = runner.invoke(cli, ["reproduce", "depth-accuracy", "--data", "digits", "--depths", "1", "--width", "8",
                            "--epochs", "1", "--batch-size", "400", "--lr-grid", "1", "--selection-steps", "1",
                            "--threads", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "depth_accuracy.json").read_text())
    assert data["config"]["width"] == 8 and (out / "depth_accuracy.png").stat().st_size > 0
    assert "L=1: test accuracy" in r.output and math.isfinite(data["runs"][0]["loss"][0])
    from sparsentk.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "depth-accuracy", "--data", "digits", "--device", "tpu", "--out", str(out)])
    assert exc.value.code == 2
