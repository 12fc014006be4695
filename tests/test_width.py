"""The width study: bisection against an exhaustive scan, exponent fits, nested initializations, resume, bad input."""

import json
import math

import numpy as np
import pytest
from scipy.special import ndtr

import sparsentk as snt
from sparsentk.experiments import width as W

TINY = {"ns": (12, 24), "dims": ("sqrt",), "families": ("a", "c0"), "seeds": (0,), "eps": (0.3, 0.1),
        "steps": (60, 120), "target": (0.3, 120), "max_factor": 3, "rtol": 0.0, "n_boot": 50,
        "cert_factors": (2.0, 3.0)}


@pytest.mark.parametrize("threshold", [1, 5, 7, 8, 9, 16, 17, 30, 63, 64, 65, 100])
def test_bisection_equals_exhaustive_scan_on_monotone_predicate(threshold):
    calls = []

    def succeeds(w):
        calls.append(w)
        return w >= threshold

    found = W.bisect_width(succeeds, 5, 16, ceiling=64)
    scan = next((w for w in range(5, 65) if w >= threshold), None)
    assert found == (max(scan, 5) if scan is not None else None)
    assert len(set(calls)) <= 2 + math.ceil(math.log2(64)) + 2


def test_bisection_relative_tolerance_brackets_the_answer():
    found = W.bisect_width(lambda w: w >= 1000, 10, 20, ceiling=4096, rtol=0.1)
    assert 1000 <= found <= 1100


def test_bisection_against_scan_of_real_gd_runs():
    """Tiny GD problem: every width of the range is run; bisection returns a succeeding width whose neighbour below
    fails, and the scan's first success when success is monotone there."""
    X, y = W.memorization_data(12, 3, seed=1)
    runs = {w: W.run_width(X, y, "c0", w, seed=1, steps=150, eps=(0.1,), lr_scale=1.0, max_width=24)
            for w in range(3, 25)}

    def succeeds(w):
        hit = W.hitting_time(runs[w], 0.1)
        return hit is not None and hit <= 150

    scan = [w for w in range(3, 25) if succeeds(w)]
    found = W.bisect_width(succeeds, 3, 24, ceiling=24)
    assert scan, "the tiny problem should be solvable below 2n"
    assert found is not None and succeeds(found) and (found == 3 or not succeeds(found - 1))
    if scan == list(range(scan[0], 25)):  # monotone: exactly the smallest width
        assert found == scan[0]


def test_hitting_times_match_an_independent_full_run():
    X, y = W.memorization_data(16, 4, seed=2)
    run = W.run_width(X, y, "c1", 40, seed=2, steps=300, eps=(0.5, 0.1, 0.01), lr_scale=0.5, max_width=40)
    net = W.family_network("c1", 4, 40, 2, 40)
    lr = 0.5 / np.linalg.eigvalsh(net.ntk(X))[-1]
    h = snt.train(net, X, y, lr=lr, steps=run["steps_run"])
    rel = 2 * h.loss / float(y @ y)
    for eps in (0.5, 0.1, 0.01):
        below = np.nonzero(rel <= eps)[0]
        assert W.hitting_time(run, eps) == (int(below[0]) if len(below) else None)


@pytest.mark.parametrize(("slope", "noise"), [(1.5, 0.0), (1.5, 0.05), (2.0, 0.1), (0.7, 0.02)])
def test_exponent_fit_recovers_known_slope(slope, noise):
    rng = np.random.default_rng(3)
    n = np.repeat([16, 32, 64, 128, 256, 512], 4).astype(float)
    y = 3.0 * n**slope * np.exp(noise * rng.standard_normal(len(n)))
    fit = W.fit_exponent(n, y, n_boot=400, seed=1)
    assert abs(fit["slope"] - slope) <= 4 * noise / math.sqrt(len(n)) + 1e-12
    assert fit["ci"][0] <= slope <= fit["ci"][1] or noise == 0.0
    if noise == 0.0:
        assert fit["ci"][0] == pytest.approx(slope) and fit["ci"][1] == pytest.approx(slope)
        assert math.exp(fit["intercept"]) == pytest.approx(3.0)


@pytest.mark.parametrize("family", ["a", "b", "c0", "c2"])
def test_nested_initializations_reuse_the_first_neurons(family):
    small, large = W.family_network(family, 5, 6, 7, 40), W.family_network(family, 5, 40, 7, 40)
    np.testing.assert_array_equal(small.W, large.W[:6])
    np.testing.assert_array_equal(small.b, large.b[:6])
    # output scales follow the width (1/√(d0 d1) for a, b; 1/√d1 for c): the draws are shared
    np.testing.assert_allclose(small.V * math.sqrt(6), large.V[:, :6] * math.sqrt(40), rtol=1e-13)


def test_companion_matches_independent_features():
    cfg = {"kind": "companion", "dim": "sqrt", "n": 16, "seed": 0, "cert_factors": [2.0], "data": "sphere",
           "activation": "gelu", "max_factor": 2}
    result = W.companion_config(cfg)
    X, y = W.memorization_data(16, 4, 0)
    for row in result["rows"]:
        net = snt.TwoLayer(4, row["width"], seed=0)
        Z = X @ net.W.T
        A = Z * ndtr(Z)  # GeLU written independently
        s = np.linalg.svd(A, compute_uv=False)
        assert row["sigma_min"] == pytest.approx(s[15] if row["width"] >= 16 else 0.0, rel=1e-8, abs=1e-300)
        assert row["rank"] == min(16, row["width"])
        assert row["r0"] == pytest.approx(np.linalg.norm(A @ net.V[0] - y), rel=1e-10)


def test_study_resumes_after_interruption(tmp_path):
    messages = []

    def interrupt(message):
        messages.append(message)
        if len(messages) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        W.width_study(**TINY, out=tmp_path, callback=interrupt)
    assert len(list(tmp_path.glob("*.json"))) == 3
    resumed_messages = []
    resumed = W.width_study(**TINY, out=tmp_path, callback=resumed_messages.append)
    assert sum("(reused)" in m for m in resumed_messages) == 3
    fresh = W.width_study(**TINY, out=None)
    # the grid runs largest n first, but the records keep the grid's order (family, series, n, seed)
    assert [(r["family"], r["n"]) for r in fresh["records"]] == [(f, n) for f in TINY["families"] for n in TINY["ns"]]
    assert json.dumps(resumed["records"], sort_keys=True) == json.dumps(fresh["records"], sort_keys=True)
    assert resumed["fits"].keys() == fresh["fits"].keys()
    assert resumed["failed"] == []
    rows = W.claims(resumed)
    assert any("a larger bias" not in r["claim"] for r in rows)
    assert all(set(r) == {"claim", "source", "measured", "verdict"} for r in rows)


def test_cli_width_writes_outputs(tmp_path, capsys):
    from sparsentk.cli import main

    with pytest.raises(SystemExit) as info:
        main(["reproduce", "width", "--ns", "12,24", "--families", "c0", "--seeds", "0", "--eps", "0.3",
              "--steps", "80", "--max-factor", "3", "--out", str(tmp_path)])
    out = capsys.readouterr()
    assert info.value.code == 0, out.err
    for name in ("width.json", "width.png", "width_companions.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "width.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit) as info:
        main(["reproduce", "width", "--dims", "0", "--out", str(tmp_path)])
    assert info.value.code == 2 and "dims" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ns": (0,)}, "ns"),
        ({"ns": (1.5,)}, "ns"),
        ({"families": ("z",)}, "families"),
        ({"dims": (0,)}, "dims"),
        ({"eps": (-0.1,)}, "eps"),
        ({"target": (0.05, 120)}, "target"),
        ({"lr_scale": 0.0}, "lr_scale"),
        ({"seeds": ()}, "seeds"),
        ({"activation": "swish"}, "activation"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        W.width_study(**{**TINY, **kwargs}, companions=False)
