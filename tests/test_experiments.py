"""Experiments on tiny inputs: recorded sparsity against direct recomputation, IDX input, resume, determinism."""

import gzip
import json
import struct

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from sparsentk.cli import cli  # noqa: E402
from sparsentk.experiments import convergence_study, mnist_sparsity_study, reproduce_report  # noqa: E402
from sparsentk.experiments.mnist_sparsity import build_mlp, load_images  # noqa: E402


def write_idx(path, arr):
    arr = np.asarray(arr, dtype=np.uint8)
    raw = bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    path.write_bytes(gzip.compress(raw))


@pytest.fixture
def tiny_mnist(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 64), ("t10k", 32)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return tmp_path


def test_convergence_study_slopes_and_verdict():
    res = convergence_study(biases=(0.0, 1.0), width=64, n=10, dim=4, steps=300, seeds=(0, 1))
    assert len(res["runs"]) == 4 and set(res["per_bias"]) == {"0.0", "1.0"}
    for run in res["runs"]:
        loss = np.array(run["loss"])
        assert loss[-1] < loss[0] and run["slope"] < 0
    # the verdict from the curves themselves: least-squares slopes of log loss over the last quarter, averaged
    # per bias, their relative spread against the tolerance
    slopes = {}
    for run in res["runs"]:
        loss = np.array(run["loss"])
        t = np.arange(225, 301)
        slope = np.polyfit(t, np.log(loss[225:]), 1)[0]
        assert run["slope"] == pytest.approx(slope, rel=1e-6)
        slopes.setdefault(run["bias"], []).append(slope)
    means = np.array([np.mean(v) for v in slopes.values()])
    spread = (means.max() - means.min()) / abs(means.mean())
    assert res["relative_spread"] == pytest.approx(spread, rel=1e-6)
    assert res["same_slope"] == (spread <= 0.25)
    assert res["verdict"].startswith("same final slope" if spread <= 0.25 else "different final slope")
    again = convergence_study(biases=(0.0, 1.0), width=64, n=10, dim=4, steps=300, seeds=(0, 1))
    assert again["runs"][3]["loss"] == res["runs"][3]["loss"]
    fixed = convergence_study(biases=(0.0, 1.0), width=64, n=10, dim=4, steps=50, seeds=(0,), lr_rule="fixed")
    assert fixed["runs"][0]["lr"] == fixed["runs"][1]["lr"]
    with pytest.raises(ValueError, match="lr_rule"):
        convergence_study(lr_rule="magic")


@pytest.mark.parametrize("rule", ["theorem", "fixed"])
def test_convergence_study_learning_rate_rule(rule):
    """η(B) = η₀·λ(B)e^{B²}/λ(0) with η₀ = lr_scale/λ_max(H∞₀) (Theorem 3.1's rule), capped at 1.9/λ_max(H∞_B);
    recomputed from the eigenvalues of the kernel on the study's own data."""
    import sparsentk as snt

    biases = (0.0, 0.5, 1.0, 2.0)
    res = convergence_study(biases=biases, width=32, n=10, dim=4, steps=3, seeds=(0, 1), lr_rule=rule, lr_scale=3.0)
    capped = []
    for run in res["runs"]:
        X, _ = snt.data.sphere(10, 4, seed=run["seed"])
        w0 = np.linalg.eigvalsh(snt.bias_ntk(X, 0.0))
        w = np.linalg.eigvalsh(snt.bias_ntk(X, run["bias"]))
        eta0 = 3.0 / w0[-1]
        wanted = eta0 * w[0] * np.exp(run["bias"] ** 2) / w0[0] if rule == "theorem" else eta0
        assert run["lr"] == pytest.approx(min(wanted, 1.9 / w[-1]), rel=1e-9)
        assert run["lr_capped"] == (wanted > 1.9 / w[-1])
        assert run["eta_lambda"] == pytest.approx(run["lr"] * w[0], rel=1e-9)
        capped.append(run["lr_capped"])
    assert any(capped) and not all(capped)  # both branches of the rule are exercised


def test_mlp_initialization():
    model = build_mlp(20, 1.5, width=32, depth=3)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 4
    for lin in linears[:-1]:
        assert torch.all(lin.bias == -1.5)
    assert isinstance(model[2], torch.nn.BatchNorm1d)


def test_sparsity_recorded_equals_direct_recomputation(tiny_mnist):
    res = mnist_sparsity_study(biases=(0.5,), data="mnist", data_dir=tiny_mnist, epochs=1, batch_size=64, width=16,
                               depth=2, seeds=(0,))
    run = res["runs"][0]
    assert res["config"]["data"] == "mnist" and res["config"]["train_size"] == 64
    # recompute the first batch's sparsity by hand from the same initialization and data order
    torch.manual_seed(0)
    model = build_mlp(784, 0.5, width=16, depth=2)
    images = load_images("mnist", tiny_mnist)
    order = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    x = torch.from_numpy(images["X_train"])[order[:64]]
    model.train()
    h = x
    fractions = []
    for layer in model:
        h = layer(h)
        if isinstance(layer, torch.nn.ReLU):
            fractions.append(float((h > 0).float().mean()))
    np.testing.assert_allclose(run["sparsity"][0], fractions, rtol=1e-6)
    assert 0 <= run["accuracy"][0] <= 1
    again = mnist_sparsity_study(biases=(0.5,), data="mnist", data_dir=tiny_mnist, epochs=1, batch_size=64, width=16,
                                 depth=2, seeds=(0,))
    assert again["runs"][0]["sparsity"] == run["sparsity"]


def test_sparsity_seeds_and_their_summary(tiny_mnist):
    res = mnist_sparsity_study(biases=(0.5, 1.0), data="mnist", data_dir=tiny_mnist, epochs=1, batch_size=16,
                               width=16, depth=3, seeds=(0, 1))
    assert [(r["bias"], r["seed"]) for r in res["runs"]] == [(0.5, 0), (0.5, 1), (1.0, 0), (1.0, 1)]
    assert res["runs"][0]["sparsity"] != res["runs"][1]["sparsity"]  # a seed changes the initialization
    one = mnist_sparsity_study(biases=(1.0,), data="mnist", data_dir=tiny_mnist, epochs=1, batch_size=16, width=16,
                               depth=3, seeds=(1,))
    assert one["runs"][0]["sparsity"] == res["runs"][3]["sparsity"]  # runs do not depend on each other
    assert set(res["per_bias"]) == {"0.5", "1.0"} and res["config"]["seeds"] == [0, 1]
    for run in res["runs"]:  # the summary against the curves themselves
        row = res["per_bias"][str(run["bias"])]
        j = row["seeds"].index(run["seed"])
        curves = np.array(run["sparsity"])
        change = np.abs(curves - curves[0]).max(axis=0)
        assert row["input_change"][j] == pytest.approx(change[0])
        assert row["hidden_change"][j] == pytest.approx(change[1:].max())
        assert row["final_active"][j] == pytest.approx(curves[-1].mean())
        assert row["accuracy"][j] == run["accuracy"][-1]
    for bad in ((), (0.5,), 3):
        with pytest.raises(ValueError, match="seeds"):
            mnist_sparsity_study(data="digits", seeds=bad)


def test_digits_fallback_and_bad_input(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARSENTK_MNIST_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_images("auto", tmp_path / "none")["data"] == "digits"
    with pytest.raises(ValueError, match="data"):
        load_images("cifar")
    with pytest.raises(ValueError, match="lr"):
        mnist_sparsity_study(data="digits", lr=-1.0)


P1_PARTS = ("convergence", "sparsity", "kernel", "audit", "timing")


def test_report_resume_and_cli(tmp_path, monkeypatch, tiny_mnist):
    import sparsentk.experiments.report as report

    small = report.settings(True, 0, "mnist", str(tiny_mnist))
    small["convergence"] |= {"steps": 200, "seeds": [0], "biases": [0.0, 1.0]}
    small["sparsity"] |= {"epochs": 1, "train_limit": None, "test_limit": None}
    small["kernel"] |= {"n": 40, "ntk_widths": [256, 1024], "ntk_n": 10}
    small["audit"] |= {"n": 40, "width": 256, "steps": 30}
    small["timing"] |= {"n": 64, "dim": 8, "width": 2048, "steps": 3}
    monkeypatch.setattr(report, "settings", lambda quick, seed, data, data_dir: small)
    calls = []
    original = report.run_kernel
    monkeypatch.setattr(report, "run_kernel", lambda cfg, say: calls.append(1) or original(cfg, say))
    out = tmp_path / "rep"
    # P1's parts (P2's and P3's parts of the report are tested with their studies)
    first = reproduce_report(out, quick=True, data="mnist", data_dir=str(tiny_mnist), parts=P1_PARTS)
    for name in ("report.md", "report.html", "results.json", "convergence.png", "sparsity.png", "kernel_spectrum.png",
                 "timing.png", "audit/audit.png"):
        assert (out / name).stat().st_size > 0, name
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and "<table>" in html
    assert len(first["claims"]) >= 8
    second = reproduce_report(out, quick=True, data="mnist", data_dir=str(tiny_mnist), resume=True, parts=P1_PARTS)
    assert len(calls) == 1  # the kernel part was reused, not recomputed
    assert second["results"] == first["results"]
    data = json.loads((out / "results.json").read_text())
    assert data["machine"]["packages"]["numpy"] and data["config"]["kernel"]["n"] == 40
    result = CliRunner().invoke(cli, ["reproduce", "report", "--quick", "--resume", "--data", "mnist", "--data-dir",
                                      str(tiny_mnist), "--parts", ",".join(P1_PARTS), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(calls) == 1


def test_report_resume_reruns_only_the_part_that_changed(tmp_path, monkeypatch, tiny_mnist):
    """Resume after a partial loss: a deleted part file, one part's changed configuration, a corrupt part file.
    Each time only that part runs again, and the other parts' files stay byte for byte what they were."""
    import sparsentk.experiments.report as report

    parts = ("convergence", "kernel", "timing")
    small = report.settings(True, 0, "mnist", str(tiny_mnist))
    small["convergence"] |= {"steps": 60, "seeds": [0], "biases": [0.0, 1.0], "n": 8, "dim": 4, "width": 32}
    small["kernel"] |= {"n": 30, "ntk_widths": [128, 256], "ntk_n": 8, "biases": [0.0, 1.0]}
    small["timing"] |= {"n": 32, "dim": 4, "width": 512, "steps": 2}
    monkeypatch.setattr(report, "settings", lambda quick, seed, data, data_dir: small)
    calls = []
    for name in parts:
        original = getattr(report, f"run_{name}")
        monkeypatch.setattr(report, f"run_{name}",
                            lambda cfg, say, name=name, original=original: calls.append(name) or original(cfg, say))
    out = tmp_path / "rep"

    def run():
        calls.clear()
        reproduce_report(out, quick=True, data="mnist", data_dir=str(tiny_mnist), resume=True, parts=parts)
        return list(calls), {name: (out / "parts" / f"{name}.json").read_bytes() for name in parts}

    ran, files = run()
    assert ran == list(parts)
    assert run() == ([], files)  # everything finished: nothing runs, nothing is rewritten

    (out / "parts" / "kernel.json").unlink()
    ran, after = run()
    assert ran == ["kernel"]
    assert all(after[name] == files[name] for name in parts if name != "kernel")
    files = after

    small["convergence"] = small["convergence"] | {"steps": 61}
    ran, after = run()
    assert ran == ["convergence"]
    assert json.loads(after["convergence"])["config"]["steps"] == 61
    assert all(after[name] == files[name] for name in parts if name != "convergence")
    files = after

    (out / "parts" / "timing.json").write_bytes(files["timing"][: len(files["timing"]) // 2])  # cut off mid-write
    ran, after = run()
    assert ran == ["timing"]
    json.loads(after["timing"])
    assert all(after[name] == files[name] for name in parts if name != "timing")


def test_cli_reproduce_commands(tmp_path, tiny_mnist):
    runner = CliRunner()
    r = runner.invoke(cli, ["reproduce", "convergence", "--steps", "100", "--seeds", "0", "--n", "8", "--dim", "3",
                            "--width", "32", "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "c" / "convergence.png").exists()
    r = runner.invoke(cli, ["reproduce", "mnist-sparsity", "--data", "mnist", "--data-dir", str(tiny_mnist),
                            "--epochs", "1", "--width", "8", "--depth", "2", "--biases", "1.0",
                            "--out", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "m" / "sparsity.json").read_text())["config"]["depth"] == 2


def test_sparsity_claims_judge_the_mean_over_seeds():
    from sparsentk.experiments.report import claims

    def study(hidden: dict) -> dict:
        per = {str(b): {"seeds": [0, 1], "input_change": [0.2, 0.3], "final_active": [0.5 - b / 4, 0.5 - b / 4],
                        "accuracy": [0.9, 0.91], "hidden_change": h} for b, h in hidden.items()}
        return {"sparsity": {"config": {"seeds": [0, 1], "epochs": 1, "train_size": 10}, "per_bias": per}}

    rows = {r["claim"][:20]: r for r in claims(study({0.5: [0.01, 0.03], 1.0: [0.04, 0.12]}))}
    constant = rows["each hidden layer's "]
    assert "B=1: 0.080 (0.040–0.120)" in constant["measured"] and "mean over 2 seeds" in constant["measured"]
    assert constant["verdict"] == "partly reproduced"  # the mean 0.08, not the worst seed's 0.12
    assert rows["a larger bias gives "]["verdict"] == "reproduced"
    assert rows["the input layer (lay"]["verdict"] == "reproduced"
    assert "drop 0.0000" in rows["... with only a marg"]["measured"]
    worse = {r["claim"][:20]: r for r in claims(study({0.5: [0.01, 0.03], 1.0: [0.11, 0.12]}))}
    assert worse["each hidden layer's "]["verdict"] == "not reproduced"
