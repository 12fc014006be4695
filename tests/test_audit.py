"""The audit's measured values against direct recomputation from History and the network."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import norm

import sparsentk as snt
from sparsentk import theory as th
from sparsentk.cli import cli


@pytest.fixture(scope="module")
def result():
    X, y = snt.data.sphere(60, 5, seed=0)
    return snt.audit(X[:45], y[:45], width=1024, bias=1.0, steps=40, X_test=X[45:], y_test=y[45:]), X, y


def rows_by_source(res, source):
    return [r for r in res.rows if r.source == source]


def test_measured_values_match_history(result):
    res, X, y = result
    h = res.history
    m, n = 1024, 45
    assert rows_by_source(res, "P1 Lemma 3.6")[0].measured == h.active_max.max()
    assert rows_by_source(res, "P1 §3 (exact)")[0].measured == h.active_mean[0]
    assert rows_by_source(res, "P1 Lemma 3.3")[0].measured == pytest.approx(h.flips.max() / (n * m))
    a8 = rows_by_source(res, "P1 Lemma A.8")
    assert a8[0].measured == h.movement_w.max() and a8[1].measured == h.movement_b.max()
    # the quantities the audit feeds its bounds, recomputed from the network and the data, not from the history
    net = snt.ShallowReLU(5, 1024, 1.0, seed=0)
    W0 = net.W.copy()
    err0 = np.linalg.norm(net.predict(X[:45]) - y[:45])
    lam = np.linalg.eigvalsh(snt.bias_ntk(X[:45], 1.0))[0]
    assert a8[0].theory == pytest.approx(th.movement_bound(n, err0, m, lam), rel=1e-9)
    assert all(r.holds for r in a8)  # wide and lazy: both movements are within the bound
    rate = rows_by_source(res, "P1 Theorem 3.1")[0]
    assert rate.theory == pytest.approx(th.convergence_rate(res.config["lr"], lam), rel=1e-9)
    loss = np.array(h.loss)
    slope = np.polyfit(np.arange(20, 41), np.log(loss[20:]), 1)[0]  # the fitted rate from the second half
    assert rate.measured == pytest.approx(1 - np.exp(slope), rel=1e-9) and rate.holds
    # the run is the same as training the same network by hand
    ref = snt.train(net, X[:45], y[:45], lr=res.config["lr"], steps=40, method="dense")
    np.testing.assert_allclose(h.loss, ref.loss, rtol=1e-9)
    # every flipped pair lies in the strip |w_r(0)·x_i − B| <= R_w‖x_i‖ + R_b (the proof of Lemma 3.3), counted
    # pair by pair from the initial network; the audit's strip probability is that strip's chance for one pair
    margins = np.abs(X[:45] @ W0.T - 1.0)
    in_strip = margins <= h.movement_w.max() + h.movement_b.max()
    flip_row = rows_by_source(res, "P1 Lemma 3.3 (proof)")[0]
    assert flip_row.measured * n * m <= in_strip.sum()
    assert flip_row.measured == pytest.approx(h.flips.max() / (n * m))
    assert flip_row.theory == pytest.approx(in_strip.mean(), abs=4 * np.sqrt(in_strip.mean() / (n * m)) + 1e-4)
    test = rows_by_source(res, "P1 Theorem 3.9 (shape only)")[0]
    assert test.measured == pytest.approx(np.mean((net.predict(X[45:]) - y[45:]) ** 2))


def test_writes_json_markdown_and_plot(result, tmp_path):
    res, _, _ = result
    names = res.write(tmp_path)
    data = json.loads((tmp_path / "audit.json").read_text())
    assert len(data["rows"]) == len(res.rows) and "machine" in data
    md = (tmp_path / "audit.md").read_text()
    assert "up to constants" in md and md.count("\n|") >= len(res.rows)
    assert (tmp_path / "audit.png").read_bytes()[:4] == b"\x89PNG"
    assert set(names) <= {p.name for p in tmp_path.iterdir()}


def test_sweep_slopes_and_cli(tmp_path):
    X, y = snt.data.sphere(30, 4, seed=1)
    res = snt.sweep(X, y, biases=[0.0, 1.0], widths=[2**8, 2**11, 2**14, 2**17], steps=10, method="dense")
    rows = res["rows"]
    assert len(rows) == 8
    # the slopes the sweep exists to measure, against fits of its own rows ...
    for key in ("R_w", "R_b"):
        for bias in (0.0, 1.0):
            sub = [r for r in rows if r["bias"] == bias]
            fit = np.polyfit(np.log([r["width"] for r in sub]), np.log([r[key] for r in sub]), 1)[0]
            slope = res["slopes"][f"log_{key}_vs_log_width"][str(bias)]
            assert slope == pytest.approx(fit, rel=1e-9)
            # ... and against Lemma A.8: movement shrinks like m^{-1/2}
            assert -0.75 < slope < -0.3, (key, bias, slope)
    # one row against training its network directly (the step is 1/λ_max of the empirical NTK at init)
    row = next(r for r in rows if r["bias"] == 1.0 and r["width"] == 2**8)
    net = snt.ShallowReLU(4, 2**8, 1.0, seed=0)
    A = (X @ net.W.T >= net.b).astype(float)
    assert row["lr"] == pytest.approx(1 / np.linalg.eigvalsh((X @ X.T + 1) * (A @ A.T) / 2**8)[-1], rel=1e-9)
    h = snt.train(net, X, y, lr=row["lr"], steps=10, method="dense")
    assert row["R_w"] == pytest.approx(h.movement_w.max(), rel=1e-9)
    assert row["R_b"] == pytest.approx(h.movement_b.max(), rel=1e-9)
    assert row["active_fraction_init"] == pytest.approx(A.mean(), rel=1e-9)
    assert row["flip_fraction"] == pytest.approx(h.flips.max() / (30 * 2**8), rel=1e-9)
    assert row["final_loss"] == pytest.approx(h.loss[-1], rel=1e-9)
    slopes = [v for key in ("R_w", "R_b") for v in res["slopes"][f"log_{key}_vs_log_width"].values()]
    assert np.mean(slopes) == pytest.approx(-0.5, abs=0.1)
    # the active fraction at init against its exact value Φ̄(B) (unit inputs), and its slope in B²/2
    for r in rows:
        assert r["active_fraction_init"] == pytest.approx(norm.sf(r["bias"]), abs=4 / np.sqrt(r["width"] * 30))
    exact = np.polyfit([0.0, 0.5], np.log(norm.sf([0.0, 1.0])), 1)[0]
    assert res["slopes"]["log_active_fraction_vs_B2_over_2"] == pytest.approx(exact, abs=0.05)
    runner = CliRunner()
    out = runner.invoke(cli, ["audit", "--n", "40", "--dim", "4", "--width", "512", "--steps", "20",
                              "--out", str(tmp_path / "a")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "a" / "audit.md").exists()
    out = runner.invoke(cli, ["sweep", "--n", "20", "--dim", "3", "--widths", "128,256", "--biases", "0,1",
                              "--steps", "10", "--out", str(tmp_path / "s")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "s" / "sweep.png").exists()
    out = runner.invoke(cli, ["kernel", "--n", "30", "--dim", "4", "--biases", "0,1,2", "--out", str(tmp_path / "k")])
    assert out.exit_code == 0, out.output
    K = np.load(tmp_path / "k" / "kernel.npy")
    X, _ = snt.data.sphere(30, 4, seed=0)
    np.testing.assert_allclose(K, snt.bias_ntk(X, 2.0))


def test_audit_bad_input():
    X, y = snt.data.sphere(10, 3, seed=0)
    with pytest.raises(ValueError, match="constants"):
        snt.audit(X, y, width=16, bias=1.0, steps=5, constants={"bogus": 1.0})
    with pytest.raises(ValueError, match="X_test, y_test"):
        snt.audit(X, y, width=16, bias=1.0, steps=5, X_test=X)
    with pytest.raises(ValueError, match="width"):
        snt.audit(X, y, width=0, bias=1.0, steps=5)
