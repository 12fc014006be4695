"""The initialization sweep (P3 Fig. 1): a tiny end-to-end run on the offline digits, initial scales, resume,
claims logic and bad input."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sparsentk.experiments import lazy as L  # noqa: E402

TINY = {"omega2": (0.005, 0.08), "runs": 2, "losses": ("ce", "mse"), "data": "digits", "width": 16,
        "student_width": 16, "epochs": 1, "teacher_epochs": 3, "train_limit": 300, "test_limit": 100, "threads": 1}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lazy")
    return out, L.lazy_study(**TINY, out=out)


def test_tiny_sweep_end_to_end(tiny_run):
    _, result = tiny_run
    assert result["failed"] == []
    assert len(result["runs"]) == 2 * 2 * 2
    for run in result["runs"]:
        assert math.isclose(run["omega1"] * run["omega2"], L.HE_PRODUCT, rel_tol=1e-12)
        assert 0.0 <= run["test_accuracy"] <= 1.0 and run["movement_first"] > 0 and run["movement_second"] > 0
    summary = result["summary"]
    assert set(summary) == {"ce", "mse"} and [r["omega2"] for r in summary["ce"]] == [0.005, 0.08]
    row = summary["ce"][0]
    values = [r["test_accuracy"] for r in result["runs"] if r["loss"] == "ce" and r["omega2"] == 0.005]
    assert row["test_accuracy"] == pytest.approx(np.mean(values))
    assert row["test_accuracy_std"] == pytest.approx(np.std(values, ddof=1))
    assert result["teacher"]["train_size"] == 300 and len(result["published"]["test_accuracy"]) == 10
    rows = L.claims(result)
    assert {r["claim"].split(" (")[0] for r in rows} >= {"test accuracy rises with ω₂/ω₁ at fixed ω₁ω₂"}


def test_resume_reuses_teacher_and_students(tiny_run):
    out, first = tiny_run
    messages = []
    again = L.lazy_study(**TINY, out=out, callback=messages.append)
    assert any("teacher reused" in m for m in messages)
    assert again["runs"] == first["runs"]


def test_student_initial_scales():
    model = L._mlp(64, 4000, "gelu", 0.03, 0.002, seed=0)
    assert float(model[0].weight.detach().std()) == pytest.approx(0.03, rel=0.02)
    assert float(model[2].weight.detach().std()) == pytest.approx(0.002, rel=0.03)
    assert isinstance(model[1], torch.nn.GELU)


def _study(acc, move, std=0.001):
    rows = [{"omega2": w, "omega1": L.HE_PRODUCT / w, "runs": 3, "test_accuracy": a, "test_accuracy_std": std,
             "train_accuracy": 1.0, "movement_first": m} for w, a, m in zip(L.P3_OMEGA2, acc, move, strict=False)]
    config = {"train_size": 100, "data": "digits", "epochs": 1, "student_width": 8, "runs": 3}
    return {"config": config, "summary": {"ce": rows}}


def test_claims_verdicts():
    rising = L.claims(_study(list(L.P3_TEST_ACCURACY), [0.01, 0.02, 0.05, 0.1]))
    assert rising[0]["verdict"] == "reproduced" and rising[1]["verdict"] == "reproduced"
    falling = L.claims(_study(list(L.P3_TEST_ACCURACY)[::-1], [0.1, 0.05, 0.02, 0.01]))
    assert falling[0]["verdict"] == "not reproduced" and falling[1]["verdict"] == "not reproduced"
    noisy = L.claims(_study([0.95, 0.96, 0.955, 0.958], [0.01, 0.02, 0.03, 0.04], std=0.05))
    assert noisy[0]["verdict"].startswith("partly")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"omega2": (-0.1,)}, "omega2"),
        ({"omega2": ()}, "omega2"),
        ({"runs": 0}, "runs"),
        ({"losses": ("l1",)}, "losses"),
        ({"device": "tpu"}, "device"),
        ({"lr": 0.0}, "lr"),
        ({"data": "cifar"}, "data"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        L.lazy_study(**{**TINY, **kwargs})


def test_cli_lazy_writes_outputs(tmp_path, capsys):
    from sparsentk.cli import main

    args = ["reproduce", "lazy", "--data", "digits", "--omega2", "0.005,0.08", "--runs", "1", "--losses", "ce",
            "--epochs", "1", "--teacher-epochs", "2", "--width", "16", "--student-width", "16", "--train-limit",
            "200", "--test-limit", "50", "--threads", "1", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    assert info.value.code == 0, out.err
    assert (tmp_path / "lazy.json").stat().st_size > 0
    assert (tmp_path / "lazy.png").read_bytes()[:4] == b"\x89PNG"
    assert "quick mode" in out.out
    with pytest.raises(SystemExit) as info:
        main([*args[:-2], "--device", "tpu", "--out", str(tmp_path)])
    assert info.value.code == 2 and "device" in capsys.readouterr().err
