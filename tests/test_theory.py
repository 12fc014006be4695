"""Theory functions against Monte Carlo, brute force and hand-evaluated numbers."""

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import multivariate_normal, norm

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


def test_bounds_against_independent_properties():
    """Properties each bound must have, confirmed by computations that do not use the code's formula."""
    # Lemma 3.3's shape: for R <= 1/B the exact strip probability Φ(B+R) − Φ(B−R) <= 2Rφ(B−R) and
    # (B−R)² >= B² − 2, so it is at most (2e/√(2π))·R·e^{−B²/2}; the earlier bound holds with c = e
    c33 = 2 * math.e / math.sqrt(2 * math.pi)
    worst = 0.0
    for B in (0.5, 1.0, 2.0, 3.0, 4.0):
        for R in np.linspace(0.01, 1 / B, 7):
            strip = norm.cdf(B + R) - norm.cdf(B - R)
            assert strip <= th.flip_bound(B, R, c=c33)
            assert strip <= th.flip_bound_previous(B, R, c=math.e)
            worst = max(worst, strip / th.flip_bound(B, R, c=c33))
    assert worst > 0.3  # ... and not by a wide margin: the shape R·e^{−B²/2} is the right one
    # B = √(c log m) makes the sparsity bound m^{−c/2}: O(m^{3/4}) active neurons at the largest bias (Thm 3.1)
    for m in (2**10, 2**16, 10**7):
        assert m * th.active_bound(th.max_bias(m)) == pytest.approx(m**0.75, rel=1e-12)
        assert th.active_bound(th.bias_schedule(m, c=1.3)) == pytest.approx(m**-0.65, rel=1e-12)
        assert th.expected_active(m, th.max_bias(m)) <= m**0.75
    # Theorem 3.1: with λ(B) = λ₀e^{−B²/2}, the contraction η·λ of its step does not depend on B
    lam0, n = 0.3, 7
    contraction = [th.theorem_lr(lam0 * math.exp(-B * B / 2), B, n, c=0.5) * lam0 * math.exp(-B * B / 2)
                   for B in (0.0, 1.0, 2.0, 3.0)]
    np.testing.assert_allclose(contraction, 0.5 * lam0**2 / n**2, rtol=1e-12)
    # ... and (1 − ηλ/4)^t bounds the squared error of GD on a kernel with least eigenvalue λ (a plain loop)
    rng = np.random.default_rng(11)
    V = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    K = V @ np.diag([0.05, 0.2, 0.4, 0.7, 0.9, 1.0]) @ V.T
    y, f = rng.standard_normal(6), np.zeros(6)
    lr = 1.0
    rate = th.convergence_rate(lr, 0.05)
    for t in range(1, 60):
        f = f - lr * K @ (f - y)
        assert (f - y) @ (f - y) <= (1 - rate) ** t * (y @ y)
    # the width condition scales like n⁴, λ₀⁻⁴ and e^{B²}
    base = th.width_requirement(10, 0.2, 1.0)
    assert th.width_requirement(20, 0.2, 1.0) == pytest.approx(16 * base)
    assert th.width_requirement(10, 0.1, 1.0) == pytest.approx(16 * base)
    assert th.width_requirement(10, 0.2, math.sqrt(2)) == pytest.approx(math.e * base)
    # Lemma A.8 from its proof: R <= Σ_t η‖∇_{w_r} L‖ <= η√n/√m Σ_t ‖f(t) − y‖ and ‖f(t) − y‖ contracts at
    # rate ηλ/4 per step in squared norm, so Σ_t ‖f(t) − y‖ <= ‖f(0) − y‖ · 8/(ηλ): C = 8 covers the proof's sum;
    # the reconstruction's C = 4 is half that (up to constants), and the bound is linear in each factor
    assert th.movement_bound(9, 2.0, 100, 0.5, C=8) == pytest.approx(2 * th.movement_bound(9, 2.0, 100, 0.5))
    assert th.movement_bound(9, 2.0, 400, 0.5) == pytest.approx(th.movement_bound(9, 2.0, 100, 0.5) / 2)


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


def equation_3(X, bias):
    """P1 Theorem 3.12, equation (3), written out from paper-notes §3 with δ from a loop over the pairs."""
    n = len(X)
    delta = min(min(np.linalg.norm(X[i] - X[j]), np.linalg.norm(X[i] + X[j]))
                for i in range(n) for j in range(n) if i != j)
    assert delta < math.sqrt(2)  # 1 − δ²/2 > 0: the plain arctangent is the paper's angle
    first = max(0.5 - bias / math.sqrt(2 * math.pi),
                (1 / bias - 1 / bias**3) * math.exp(-bias**2 / 2) / math.sqrt(2 * math.pi))
    angle = math.atan(delta * math.sqrt(1 - delta**2 / 4) / (1 - delta**2 / 2))
    return first - math.exp(-bias**2 / (2 - delta**2 / 2)) * (math.pi - angle) / (2 * math.pi)


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("bias", [0.25, 0.5])
def test_restricted_lambda_bound_positive_on_separated_data(n, bias):
    """Well-separated points (nearly orthogonal in d = 60) make equation (3) positive at B > 0: its value is
    checked against an independent evaluation, and it must lie below the brute-force restricted minimum."""
    rng = np.random.default_rng(10 + n)
    X = unit_rows(rng, n, 60)
    expected = equation_3(X, bias)
    assert expected > 0.02
    bound = th.restricted_lambda_bound(X, bias)
    assert bound == pytest.approx(expected, rel=1e-12)
    H = snt.bias_ntk(X, bias)
    C = th.region_matrix(X, bias)
    a = rng.standard_normal((200_000, n))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    feasible = np.einsum("ij,jk,ik->i", a, C, a) >= 0
    assert feasible.mean() > 0.1
    assert np.einsum("ij,jk,ik->i", a[feasible], H, a[feasible]).min() >= bound
    assert th.restricted_lambda_min(X, bias) >= bound


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


def independent_region_form(X, bias):
    """q(a) = Σ_{i≠j} a_i a_j (p_ij − min p) with p_ij from scipy's bivariate normal CDF (Definition 3.11)."""
    n = len(X)
    p = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(n):
            if i != j:
                r = float(X[i] @ X[j])
                p[i, j] = multivariate_normal(mean=[0, 0], cov=[[1, r], [r, 1]]).cdf([-bias, -bias])
    off = ~np.eye(n, dtype=bool)
    C = np.where(off, p - p[off].min(), 0.0)
    return lambda a: float(sum(a[i] * a[j] * C[i, j] for i in range(n) for j in range(n) if i != j))


def test_region_contains_nonnegative_orthant_and_label_shift_lands_in_it():
    rng = np.random.default_rng(3)
    X = unit_rows(rng, 8, 4)
    assert th.in_region(rng.uniform(0, 1, 8), X, 1.0)
    y = rng.uniform(-1, 1, 8)
    assert th.label_shift(X, y, 1.0) == 0.0 and th.in_region(y, X, 1.0)  # already in R: no shift
    assert th.label_shift(X, np.abs(y), 1.0) == 0.0  # the non-negative orthant needs none either


@pytest.mark.parametrize("seed", [0, 4])
def test_label_shift_is_the_smallest_shift_into_the_region(seed):
    rng = np.random.default_rng(seed)
    X = unit_rows(rng, 8, 4)
    y = rng.uniform(-1, 1, 8)
    q = independent_region_form(X, 1.0)
    assert q(y) < 0  # these labels are outside R: the shift is positive
    # the least c >= 0 with q(y + c1) >= 0, by root bracketing on the independently built form
    expected = brentq(lambda c: q(y + c), 0.0, 100.0, xtol=1e-14)
    c = th.label_shift(X, y, 1.0)
    assert c == pytest.approx(expected, rel=1e-5)
    assert th.in_region(y + c * (1 + 1e-9), X, 1.0) and q(y + c * (1 + 1e-6)) >= 0
    assert not th.in_region(y + 0.95 * c, X, 1.0) and q(y + 0.95 * c) < 0
    assert not th.in_region(y + 0.99 * c, X, 1.0)


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
