"""Theory functions against Monte Carlo, brute force and hand-evaluated numbers."""

import math

import numpy as np
import pytest
from scipy.stats import norm

import sparsentk as snt
from conftest import unit_rows
from sparsentk import theory as th


def test_active_probability_against_monte_carlo():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((1_000_000, 3))
    x = np.array([0.6, 0.0, 0.8]) * 1.7
    mc = np.mean(g @ x >= 2.0)
    assert th.active_probability(2.0, 1.7) == pytest.approx(mc, abs=5e-4)
    assert th.active_probability(2.0) <= th.active_bound(2.0) == pytest.approx(math.exp(-2))
    assert th.expected_active(1000, 1.0) == pytest.approx(1000 * norm.sf(1.0))
    assert th.active_probability(0.0, 0.0) == 1.0 and th.active_probability(1.0, 0.0) == 0.0


def test_flip_probability_against_monte_carlo():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((2_000_000, 2))
    x = np.array([1.2, 0.5])
    s = np.linalg.norm(x)
    R_w, R_b, B = 0.1, 0.05, 1.5
    mc = np.mean(np.abs(w @ x - B) <= R_w * s + R_b)
    assert th.flip_probability(B, R_w, R_b, s) == pytest.approx(mc, abs=5e-4)
    # the strip contains every flip: move each neuron by at most R_w, R_b adversarially and check
    dw = rng.standard_normal(w.shape)
    dw *= R_w / np.linalg.norm(dw, axis=1, keepdims=True)
    db = rng.uniform(-R_b, R_b, len(w))
    flipped = (w @ x >= B) != ((w + dw) @ x >= B + db)
    strip = np.abs(w @ x - B) <= R_w * s + R_b
    assert not np.any(flipped & ~strip)


def test_bound_formulas_by_hand():
    assert th.flip_bound(2.0, 0.1, c=3.0) == pytest.approx(3 * 0.1 * math.exp(-2))
    assert th.flip_bound_previous(2.0, 0.5) == pytest.approx(math.exp(-2))
    assert th.movement_bound(16, 2.0, 100, 0.5) == pytest.approx(4 * 4 * 2 / (10 * 0.5))
    assert th.theorem_lr(0.1, 1.0, 10, c=2.0) == pytest.approx(2 * 0.1 * math.e / 100)
    assert th.convergence_rate(0.4, 0.5) == pytest.approx(0.05)
    assert th.width_requirement(2, 0.5, 0.0) == pytest.approx(16 * 16)
    assert th.bias_schedule(2**16, c=2.0) == pytest.approx(math.sqrt(2 * 16 * math.log(2)))
    assert th.max_bias(2**18) == pytest.approx(math.sqrt(0.5 * math.log(2**18)))
    assert th.initial_error_bound(1, 1, 0.0, delta=2 / math.e) == pytest.approx(1 + 2 * 1)


def test_fitted_rate_and_lambda0():
    t = np.arange(50)
    assert th.fitted_rate(3.0 * 0.9**t) == pytest.approx(0.1)
    B = np.array([0.0, 1.0, 2.0])
    assert th.fit_lambda0(B, 0.3 * np.exp(-B**2 / 2)) == pytest.approx(0.3)


def test_separation_and_equation_3():
    X = np.eye(3)
    assert th.separation(X) == pytest.approx(math.sqrt(2))
    assert th.restricted_lambda_bound(X, 0.0) == pytest.approx(0.25)  # orthogonal data at B = 0
    d = 0.05
    X = np.array([[1.0, 0.0], [math.cos(d), math.sin(d)], [0.0, 1.0]])  # ‖x1 − x2‖ = 2 sin(d/2) ≈ d
    delta = th.separation(X)
    assert delta == pytest.approx(2 * math.sin(d / 2))
    assert th.restricted_lambda_bound(X, 0.0) == pytest.approx(delta / (2 * math.pi), rel=0.05)
    with pytest.raises(ValueError, match="unit-norm rows"):
        th.restricted_lambda_bound(2 * np.eye(3), 1.0)


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("bias", [0.0, 1.0, 2.0])
def test_restricted_lambda_min_against_brute_force(n, bias):
    rng = np.random.default_rng(n)
    X = unit_rows(rng, n, 3)
    H = snt.bias_ntk(X, bias)
    C = th.region_matrix(X, bias)
    a = rng.standard_normal((300_000, n))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    feasible = np.einsum("ij,jk,ik->i", a, C, a) >= 0
    brute = np.einsum("ij,jk,ik->i", a[feasible], H, a[feasible]).min()
    exact = th.restricted_lambda_min(X, bias)
    assert exact <= brute + 1e-10  # the dual is a lower bound on every feasible point ...
    assert brute - exact < 0.02 * brute  # ... and tight (sampling gets within a few percent)
    assert exact >= snt.lambda_min(H) - 1e-12
    assert exact >= th.restricted_lambda_bound(X, bias) - 1e-12


def test_region_contains_nonnegative_orthant_and_label_shift_lands_in_it():
    rng = np.random.default_rng(3)
    X = unit_rows(rng, 8, 4)
    assert th.in_region(rng.uniform(0, 1, 8), X, 1.0)
    y = rng.uniform(-1, 1, 8)
    c = th.label_shift(X, y, 1.0)
    assert th.in_region(y + c, X, 1.0)
    if c > 0:
        assert not th.in_region(y + 0.95 * c, X, 1.0)


def test_complexity():
    rng = np.random.default_rng(4)
    X = unit_rows(rng, 10, 4)
    y = rng.uniform(-1, 1, 10)
    H = snt.bias_ntk(X, 0.5)
    assert th.complexity(X, y, 0.5) == pytest.approx(math.sqrt(2 * y @ np.linalg.solve(H, y) / 10))
    assert th.complexity(X, y, 0.5) <= th.complexity_worst_case(y, snt.lambda_min(H))


def test_bad_input():
    with pytest.raises(ValueError, match="R_w"):
        th.flip_probability(1.0, -0.1, 0.0)
    with pytest.raises(ValueError, match="lam: expected a positive number"):
        th.movement_bound(4, 1.0, 10, 0.0)
    with pytest.raises(ValueError, match="bias"):
        th.active_bound(-1.0)
