"""The audit's measured values against direct recomputation from History and the network."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

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
    lam = snt.lambda_min(snt.bias_ntk(X[:45], 1.0))
    assert a8[0].theory == pytest.approx(4 * np.sqrt(n) * np.sqrt(2 * h.loss[0]) / (np.sqrt(m) * lam))
    rate = rows_by_source(res, "P1 Theorem 3.1")[0]
    assert rate.measured == pytest.approx(th.fitted_rate(h.loss))
    assert rate.theory == pytest.approx(res.config["lr"] * lam / 4)
    # the run is the same as training the same network by hand
    net = snt.ShallowReLU(5, 1024, 1.0, seed=0)
    ref = snt.train(net, X[:45], y[:45], lr=res.config["lr"], steps=40)
    np.testing.assert_allclose(h.loss, ref.loss, rtol=1e-9)
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
    res = snt.sweep(X, y, biases=[0.0, 1.0, 2.0], widths=[256, 1024], steps=20)
    assert len(res["rows"]) == 6
    assert res["slopes"]["log_active_fraction_vs_B2_over_2"] < 0
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
