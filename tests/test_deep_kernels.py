"""deep_ntk against independent computations: P2's Lemma 3.1 written here, a recursion with scipy moments, P1's
kernel at depth 1, the linear network, and Monte Carlo over wide random DeepReLU networks."""

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import ndtr, owens_t

import sparsentk as snt
from p2_oracles import lemma31_cos


@pytest.fixture(params=["per-layer", "composed"])
def path(request, monkeypatch):
    """Run a test through both evaluation paths of deep_ntk: layer by layer per entry, and the composed θ-table."""
    from sparsentk import deep_kernels

    monkeypatch.setattr(deep_kernels, "COMPOSE_MIN_ENTRIES", 10**15 if request.param == "per-layer" else 0)
    return request.param


def unit(rng, n, d):
    X = rng.standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.mark.parametrize("L", [0, 1, 3, 10])
def test_bias_free_kernel_is_p2_lemma_31_for_rows_of_any_norm(L, path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((7, 4)) * rng.uniform(0.3, 3.0, (7, 1))
    K = snt.deep_ntk(X, L, 0.0, train_bias=False)
    norms = np.linalg.norm(X, axis=1)
    np.testing.assert_allclose(np.diag(K), (L + 1) * norms**2, rtol=1e-14)
    for i in range(7):
        for j in range(i + 1, 7):
            th = math.acos(np.clip(X[i] @ X[j] / (norms[i] * norms[j]), -1, 1))
            ref = (L + 1) * norms[i] * norms[j] * lemma31_cos(th, L)
            assert abs(K[i, j] - ref) <= 1e-12 * (L + 1) * norms[i] * norms[j]
    assert np.array_equal(K, K.T)


# ---- an independent recursion: moments by scipy (Owen's T for (P), quadrature for (J)), correlations as numbers
def p_owen(rho, B):
    if rho >= 1:
        return ndtr(-B)
    if rho <= -1:
        return 0.0
    return ndtr(-B) - 2 * owens_t(B, math.sqrt((1 - rho) / (1 + rho)))


def j_quad(rho, B):
    if rho >= 1:
        return integrate.quad(lambda u: (u - B) ** 2 * math.exp(-u * u / 2) / math.sqrt(2 * math.pi), B, np.inf,
                              epsabs=0, epsrel=1e-12)[0]
    r = math.sqrt(1 - rho * rho)

    def inner(u):
        mu = rho * u - B
        return r * math.exp(-(mu / r) ** 2 / 2) / math.sqrt(2 * math.pi) + mu * ndtr(mu / r)

    f = lambda u: math.exp(-u * u / 2) / math.sqrt(2 * math.pi) * (u - B) * inner(u)  # noqa: E731
    return integrate.quad(f, B, np.inf, epsabs=0, epsrel=1e-12, limit=200)[0]


def reference_ntk(G, L, B, beta2, layers):
    """paper-notes §5 recursion on one pair of unit inputs with Gram entry G (trained layers 1-based)."""
    c = 1.0 / j_quad(1.0, B)
    rho = G
    ntk = (1 if 1 in layers else 0) * (G + (beta2 if L > 0 else 0.0))
    for level in range(1, L + 1):
        rho_next, pdot = c * j_quad(rho, B), c * p_owen(rho, B)
        add = beta2 if level < L else 0.0
        ntk = (1 if level + 1 in layers else 0) * (rho_next + add) + pdot * ntk
        rho = 1.0 if rho_next > 1 - 1e-12 else rho_next  # the diagonal: c_B J_B(1) = 1 up to the quadrature's ulp
    return ntk, rho


@pytest.mark.parametrize("B,L,train_bias,layers", [
    (1.0, 3, True, None), (1.0, 2, False, None), (0.5, 3, True, [1]), (2.0, 2, True, [2, 3]), (1.0, 1, True, [1]),
    (2.0, 8, True, None),  # chaotic and deep: the composed table misses its accuracy check and is not used
    (0.001, 3, True, None), (0.005, 2, False, None),  # small thresholds: angles above 3π/4 by direct quadrature
])
def test_deep_kernel_against_independent_recursion(B, L, train_bias, layers, path):
    rng = np.random.default_rng(1)
    X = unit(rng, 4, 3)
    v = -X[0] + 0.05 * X[1]
    X[3] = v / np.linalg.norm(v)  # a near-antipodal pair (θ ≈ π − 0.05)
    K, N = snt.deep_ntk(X, L, B, train_bias=train_bias, layers=layers, return_nngp=True)
    chosen = set(range(1, L + 2)) if layers is None else set(layers)
    for i in range(4):
        for j in range(i, 4):
            G = 1.0 if i == j else float(X[i] @ X[j])
            ref, nngp = reference_ntk(G, L, B, 1.0 if train_bias else 0.0, chosen)
            assert abs(K[i, j] - ref) <= 1e-9 * max(abs(ref), 1.0), (i, j, K[i, j], ref)
            assert abs(N[i, j] - nngp) <= 1e-9
    # pinned diagonal: NNGP_ii = 1; Θ¹ = 1 + β², Θ^(l+1) = 1 + β² + χ₁Θ^(l), NTK_ii = 1 + χ₁Θ^(L), i.e. the closed
    # form 1 + χ₁(1 + β²)(χ₁^L − 1)/(χ₁ − 1) (paper-notes §5)
    if layers is None:
        chi = snt.theory.chi1(B)
        beta2 = 1.0 if train_bias else 0.0
        np.testing.assert_allclose(np.diag(N), 1.0, rtol=0, atol=1e-15)
        np.testing.assert_allclose(np.diag(K), 1 + chi * (1 + beta2) * (chi**L - 1) / (chi - 1), rtol=1e-13)


@pytest.mark.parametrize("B", [0.5, 1.0, 2.0])
def test_depth_one_with_frozen_output_is_c_times_p1_kernel(B):
    rng = np.random.default_rng(2)
    X = unit(rng, 9, 5)
    c = snt.theory.variance_preserving_scale(B)
    K = snt.deep_ntk(X, 1, B, train_output=False)
    np.testing.assert_allclose(K, c * snt.bias_ntk(X, B), rtol=1e-12, atol=1e-14)
    K0 = snt.deep_ntk(X, 1, B, train_output=False, train_bias=False)
    G = X @ X.T
    rho = np.clip(G, -1, 1)
    np.fill_diagonal(rho, 1.0)  # P has slope ~1/√(1 − ρ) at ρ = 1: the oracle needs the exact diagonal
    np.testing.assert_allclose(K0, c * G * snt.orthant_probability(rho, B), rtol=1e-11, atol=1e-14)


def test_cross_kernel_matches_the_joint_kernel(path):
    rng = np.random.default_rng(3)
    X, Y = unit(rng, 6, 4), unit(rng, 3, 4)
    full = snt.deep_ntk(np.vstack([X, Y]), 4, 1.0)
    cross, nngp = snt.deep_ntk(X, 4, 1.0, Y, return_nngp=True)
    np.testing.assert_allclose(cross, full[:6, 6:], rtol=1e-14, atol=1e-14)
    assert nngp.shape == (6, 3)


@pytest.mark.parametrize("B", [0.0, 0.5])
def test_linear_network_kappa_equals_gram_kappa(B):
    rng = np.random.default_rng(4)
    X = unit(rng, 6, 12)
    G = X @ X.T
    w = np.linalg.eigvalsh(G)
    kappa_gram = w[-1] / w[0]
    for L in (0, 1, 4, 10):
        K = snt.deep_ntk(X, L, B, activation="linear", train_bias=False)
        if B == 0.0:
            np.testing.assert_allclose(K, (L + 1) * G, rtol=1e-12, atol=1e-12)
            assert abs(snt.condition_number(K) / kappa_gram - 1) <= 1e-9
        else:  # with a threshold the linear net adds a constant: K = a G + b 11ᵀ, symmetric and PSD
            assert np.linalg.eigvalsh(K).min() > 0


def test_relu_kappa_falls_to_the_depth_limit():
    # P2 Thm 4.3: κ → (n+3)/3; at L = 10⁴, 1.668, 2.671, 7.684 for n = 2, 5, 20 (paper-notes §5)
    rng = np.random.default_rng(5)
    for n, expected in ((2, 1.668), (5, 2.671), (20, 7.684)):
        X = unit(rng, n, 30)
        K = snt.deep_ntk(X, 10_000, 0.0, train_bias=False)
        kappa = snt.condition_number(K)
        assert abs(kappa - expected) <= 0.02 * expected
        assert kappa > snt.theory.kappa_limit(n)


def test_symmetry_psd_and_duplicates(path):
    rng = np.random.default_rng(6)
    X = unit(rng, 40, 5)
    X[5] = X[3]  # duplicate
    X[7] = -X[2]  # antipodal
    v = X[0] + 1e-9 * X[1]
    X[9] = v / np.linalg.norm(v)  # near-parallel to row 0
    for B in (0.0, 1.0):
        K, N = snt.deep_ntk(X, 6, B, return_nngp=True)
        assert np.array_equal(K, K.T) and np.array_equal(N, N.T)
        w = np.linalg.eigvalsh(K)
        assert w[0] >= -1e-12 * w[-1]
        assert K[3, 5] == K[3, 3]  # identical rows give the diagonal exactly
        # near-parallel pair: a valid 2 × 2 Gram block, slightly below the diagonal
        assert K[0, 9] < K[0, 0] and K[0, 0] * K[9, 9] - K[0, 9] ** 2 >= -1e-12


def test_normalize_option_and_progress():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((5, 3)) * 3.0
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    calls = []
    K = snt.deep_ntk(X, 3, 1.0, normalize=True, progress=lambda done, total: calls.append((done, total)))
    np.testing.assert_allclose(K, snt.deep_ntk(U, 3, 1.0), rtol=1e-14)
    assert calls and calls[-1][0] == calls[-1][1]


def test_monte_carlo_wide_networks_agree_with_the_kernel():
    # depth 1: E[empirical NTK] equals the kernel exactly at every width (a mean of i.i.d. neurons): sharp check.
    # depth 2: width 1024, 12 nets: the finite-width bias (≈ χ₁²/m) and the noise stay within a few per cent.
    rng = np.random.default_rng(8)
    X = unit(rng, 4, 3)
    B = 1.0
    K1 = snt.deep_ntk(X, 1, B)
    samples = np.array([snt.empirical_ntk(snt.DeepReLU(3, 256, 1, B, seed=s), X) for s in range(300)])
    mean, se = samples.mean(0), samples.std(0) / math.sqrt(len(samples))
    assert np.all(np.abs(mean - K1) <= 4.5 * se + 1e-12)
    assert np.abs(mean - K1).max() <= 0.02 * np.abs(K1).max()
    K2 = snt.deep_ntk(X, 2, B)
    samples = np.array([snt.empirical_ntk(snt.DeepReLU(3, 1024, 2, B, seed=s), X) for s in range(12)])
    assert np.abs(samples.mean(0) - K2).max() <= 0.08 * np.abs(K2).max()


def test_bad_inputs():
    X = np.eye(3)
    with pytest.raises(ValueError, match="X: the deep kernel needs non-zero rows"):
        snt.deep_ntk(np.array([[1.0, 0.0], [0.0, 0.0]]), 2)
    with pytest.raises(ValueError, match="Y: the deep kernel needs non-zero rows"):
        snt.deep_ntk(X, 2, 0.0, np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"X: with bias > 0 .*normalize=True"):
        snt.deep_ntk(2 * X, 2, 1.0)
    with pytest.raises(ValueError, match="bias"):
        snt.deep_ntk(X, 2, -1.0)
    with pytest.raises(ValueError, match="depth"):
        snt.deep_ntk(X, -1)
    with pytest.raises(TypeError, match="depth"):
        snt.deep_ntk(X, 2.5)
    with pytest.raises(ValueError, match="activation"):
        snt.deep_ntk(X, 2, activation="tanh")
    with pytest.raises(ValueError, match="layers"):
        snt.deep_ntk(X, 2, layers=[0])
    with pytest.raises(ValueError, match="layers"):
        snt.deep_ntk(X, 2, layers=[4])
    with pytest.raises(ValueError, match="layers"):
        snt.deep_ntk(X, 2, layers=[3], train_output=False)
    with pytest.raises(TypeError, match="train_bias"):
        snt.deep_ntk(X, 2, train_bias="yes")
    with pytest.raises(ValueError, match="Y"):
        snt.deep_ntk(X, 2, 0.0, np.eye(2))
    with pytest.raises(ValueError, match="X"):
        snt.deep_ntk(np.array([[np.nan, 1.0]]), 2)
    with pytest.raises(ValueError, match=r"depth: .*overflows"):
        snt.deep_ntk(X, 2000, 2.0)


def test_row_panels_give_the_same_kernel(monkeypatch, path):
    rng = np.random.default_rng(9)
    X, Y = unit(rng, 45, 6), unit(rng, 7, 6)
    whole = snt.deep_ntk(X, 3, 1.0, return_nngp=True)
    cross = snt.deep_ntk(X, 3, 1.0, Y)
    monkeypatch.setattr(snt._gram, "PANEL_ENTRIES", 100)  # 8-row panels
    for a, b in zip(snt.deep_ntk(X, 3, 1.0, return_nngp=True), whole, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(snt.deep_ntk(X, 3, 1.0, Y), cross, rtol=1e-15, atol=1e-15)


def test_bias_free_threshold_with_trained_biases_for_rows_of_any_norm(path):
    # B = 0, β = 1, rows of different norms: Θ¹ = G + 1, Θ^(l+1) = S·ρ^(l+1) + 1 + Ṗ^(l+1)·Θ^(l) with the closed
    # forms ρ' = (sin θ + (π − θ) cos θ)/π, Ṗ = (π − θ)/π (c = 2), S = ‖x‖‖y‖ (positive homogeneity)
    rng = np.random.default_rng(10)
    X = rng.standard_normal((6, 3)) * rng.uniform(0.2, 4.0, (6, 1))
    L = 4
    K = snt.deep_ntk(X, L, 0.0)
    norms = np.linalg.norm(X, axis=1)
    for i in range(6):
        for j in range(i, 6):
            S = norms[i] * norms[j]
            th = 0.0 if i == j else math.acos(np.clip(X[i] @ X[j] / S, -1, 1))
            ntk = S * math.cos(th) + 1.0
            for level in range(1, L + 1):
                rho = (math.sin(th) + (math.pi - th) * math.cos(th)) / math.pi
                pdot = (math.pi - th) / math.pi
                ntk = S * rho + (1.0 if level < L else 0.0) + pdot * ntk
                th = math.acos(min(rho, 1.0))
            assert abs(K[i, j] - ntk) <= 1e-11 * abs(K[i, i])
