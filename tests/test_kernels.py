"""Kernels against Monte Carlo, explicit finite-width sums, a Jacobian contraction and a plain GD loop."""

import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal, norm

import sparsentk as snt
from conftest import unit_rows


def mc_bias_ntk(X, Y, bias, samples, rng):
    g = rng.standard_normal((samples, X.shape[1]))
    ax, ay = (X @ g.T >= bias).astype(float), (Y @ g.T >= bias).astype(float)
    return (X @ Y.T + 1) * (ax @ ay.T) / samples


@pytest.mark.parametrize("bias", [0.0, 0.7, 1.5, 2.5])
def test_bias_ntk_matches_monte_carlo(bias):
    rng = np.random.default_rng(0)
    X = unit_rows(rng, 12, 4)
    H = snt.bias_ntk(X, bias)
    mc = mc_bias_ntk(X, X, bias, 400_000, rng)
    p = np.clip(H / (X @ X.T + 1), 1e-12, 1)
    se = (X @ X.T + 1) * np.sqrt(p * (1 - p) / 400_000)
    assert np.all(np.abs(H - mc) <= 5 * se + 1e-12)


def exact_bias_ntk(X, Y, bias):
    """H∞ entry by entry from scipy's bivariate normal CDF (thresholds B/‖x‖, B/‖y‖; g·0 = 0 for a zero row)."""
    out = np.empty((len(X), len(Y)))
    for i, x in enumerate(X):
        for j, z in enumerate(Y):
            nx, nz = np.linalg.norm(x), np.linalg.norm(z)
            if nx == 0 or nz == 0:
                p_x = (bias == 0) if nx == 0 else norm.sf(bias / nx)
                p_z = (bias == 0) if nz == 0 else norm.sf(bias / nz)
                p = float(p_x) * float(p_z)  # a zero row's indicator is a constant: the two are independent
            else:
                r = float(np.clip(x @ z / (nx * nz), -1, 1))
                if abs(r) > 1 - 1e-12:
                    p = norm.sf(max(bias / nx, bias / nz)) if r > 0 else max(0.0, norm.sf(bias / nx) - norm.cdf(
                        -bias / nz))
                else:
                    p = multivariate_normal(mean=[0, 0], cov=[[1, r], [r, 1]]).cdf([-bias / nx, -bias / nz])
            out[i, j] = (x @ z + 1) * p
    return out


def test_bias_ntk_general_norms_and_zero_rows():
    rng = np.random.default_rng(1)
    X = unit_rows(rng, 10, 3) * rng.uniform(0.4, 2.5, (10, 1))
    X[4] = 0.0
    for bias in (0.0, 0.8):
        H = snt.bias_ntk(X, bias)
        mc = mc_bias_ntk(X, X, bias, 400_000, rng)
        assert np.abs(H - mc).max() < 0.012
        # the Monte Carlo margin would pass a 1 % error: pin every entry to the deterministic oracle
        np.testing.assert_allclose(H, exact_bias_ntk(X, X, bias), rtol=0, atol=1e-7)
        np.testing.assert_array_equal(H, H.T)
        expected_zero = 0.5 if bias == 0 else 0.0
        np.testing.assert_allclose(np.delete(H[4], 4), expected_zero)
        assert H[4, 4] == (1.0 if bias == 0 else 0.0)
    # rectangular call agrees with the square one
    H = snt.bias_ntk(X, 0.8)
    np.testing.assert_allclose(snt.bias_ntk(X[:3], 0.8, X), H[:3], atol=1e-14)


@pytest.mark.parametrize("bias", [0.0, 0.6, 1.7])
@pytest.mark.parametrize("case", ["unit", "norms", "zero_rows_in_Y"])
def test_bias_ntk_between_two_sets_matches_monte_carlo(case, bias):
    """The rectangular kernel H∞(X, Y) with Y ≠ X: unit rows, rows of other norms, zero rows only in Y."""
    rng = np.random.default_rng(12)
    X = unit_rows(rng, 9, 4)
    Y = unit_rows(rng, 7, 4)
    if case != "unit":
        X = X * rng.uniform(0.5, 2.0, (9, 1))
        Y = Y * rng.uniform(0.3, 2.5, (7, 1))
    if case == "zero_rows_in_Y":
        Y[[1, 5]] = 0.0
    H = snt.bias_ntk(X, bias, Y)
    assert H.shape == (9, 7)
    samples = 400_000
    mc = mc_bias_ntk(X, Y, bias, samples, rng)
    p = np.clip(mc / np.where(np.abs(X @ Y.T + 1) > 0, X @ Y.T + 1, 1), 1e-4, 1)
    se = np.abs(X @ Y.T + 1) * np.sqrt(p * (1 - p) / samples)
    assert np.all(np.abs(H - mc) <= 5 * se + 1e-12)
    np.testing.assert_allclose(H, exact_bias_ntk(X, Y, bias), rtol=0, atol=1e-7)
    if case == "zero_rows_in_Y":
        np.testing.assert_array_equal(H[:, [1, 5]], 0.0 if bias > 0 else norm.sf(0.0) * 1.0)
    # swapping the sets transposes the kernel
    np.testing.assert_allclose(snt.bias_ntk(Y, bias, X), H.T, atol=1e-14)


def test_bias_ntk_is_exactly_symmetric_psd_and_matches_entrywise_formula():
    rng = np.random.default_rng(2)
    X = unit_rows(rng, 300, 10)
    H = snt.bias_ntk(X, 2.0)
    np.testing.assert_array_equal(H, H.T)
    assert np.linalg.eigvalsh(H)[0] > 0
    rho = np.clip(X @ X.T, -1, 1)
    np.testing.assert_allclose(H, (X @ X.T + 1) * snt.orthant_probability(rho, 2.0), atol=1e-13)


def test_common_norm_uses_scaled_threshold():
    rng = np.random.default_rng(3)
    X = unit_rows(rng, 20, 5)
    H = snt.bias_ntk(3.0 * X, 1.5)
    rho = np.clip(X @ X.T, -1, 1)
    np.testing.assert_allclose(H, (9 * X @ X.T + 1) * snt.orthant_probability(rho, 0.5), atol=1e-12)


def test_empirical_ntk_matches_explicit_sum_and_jacobian():
    rng = np.random.default_rng(4)
    X = unit_rows(rng, 15, 3)
    Y = unit_rows(rng, 6, 3)
    for bias, width in ((0.0, 300), (2.0, 5000)):
        net = snt.ShallowReLU(3, width, bias=bias, seed=1)
        Ax, Ay = X @ net.W.T >= net.b, Y @ net.W.T >= net.b
        explicit = (X @ Y.T + 1) * (Ax.astype(float) @ Ay.T.astype(float)) / width
        np.testing.assert_allclose(snt.empirical_ntk(net, X, Y), explicit, rtol=1e-13, atol=1e-15)
    # against the Jacobian contraction <∇f(x_i), ∇f(x_j)> of the network's own gradient formula
    net = snt.ShallowReLU(3, 40, bias=0.3, seed=2)
    jac = []
    for x in X:
        active = (net.W @ x >= net.b).astype(float) * net.a / np.sqrt(net.width)
        jac.append(np.concatenate([(active[:, None] * x[None, :]).ravel(), -active]))
    jac = np.array(jac)
    np.testing.assert_allclose(snt.empirical_ntk(net, X), jac @ jac.T, atol=1e-13)


def test_empirical_ntk_converges_to_bias_ntk_at_inverse_sqrt_width():
    rng = np.random.default_rng(5)
    X = unit_rows(rng, 20, 4)
    H = snt.bias_ntk(X, 1.0)
    errors = {}
    for width in (2**12, 2**14, 2**16):
        errs = [np.abs(snt.empirical_ntk(snt.ShallowReLU(4, width, bias=1.0, seed=s), X) - H).mean() for s in range(4)]
        errors[width] = np.mean(errs)
    slope = np.polyfit(np.log(list(errors)), np.log(list(errors.values())), 1)[0]
    assert -0.7 < slope < -0.3, errors
    assert errors[2**16] < 0.004


def test_lambda_min_decreases_like_exp_minus_b2_over_2():
    """Measured on these 40 unit points in d = 20, B = 1..3: lambda_min = 0.155, 0.0826, 0.0335, 0.0103, 0.00243;
    the fit log(lambda) = log(lambda0) + s * B^2/2 gives s = -1.04 and lambda0 = 0.265 (mean-of-logs
    lambda0 = 0.242), i.e. lambda_min ~ lambda0 e^{-B^2/2} as P1 assumes."""
    rng = np.random.default_rng(6)
    X = unit_rows(rng, 40, 20)
    biases = np.array([1.0, 1.5, 2.0, 2.5, 3.0])
    lam = np.array([snt.lambda_min(snt.bias_ntk(X, b)) for b in biases])
    assert np.all(np.diff(lam) < 0)
    slope = np.polyfit(biases**2 / 2, np.log(lam), 1)[0]
    assert -1.6 < slope < -0.8  # e^{-B²/2} up to polynomial factors in B


def test_spectral_helpers_and_warnings():
    K = np.diag([1.0, 2.0, 4.0])
    assert snt.lambda_min(K) == 1.0 and snt.condition_number(K) == 4.0
    with pytest.warns(RuntimeWarning, match="numerically singular"):
        assert snt.condition_number(np.ones((3, 3))) == np.inf
    with pytest.raises(ValueError, match="K: expected a symmetric matrix"):
        snt.lambda_min(np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="K: expected a square matrix"):
        snt.condition_number(np.ones((2, 3)))


def test_ntk_predictions_match_plain_gd_loop():
    rng = np.random.default_rng(7)
    X, Xt = unit_rows(rng, 25, 5), unit_rows(rng, 7, 5)
    y = rng.uniform(-1, 1, 25)
    K, Kt = snt.bias_ntk(X, 1.0), snt.bias_ntk(Xt, 1.0, X)
    f0, ft0 = rng.normal(0, 0.1, 25), rng.normal(0, 0.1, 7)
    lr = 1.0 / np.linalg.eigvalsh(K)[-1]
    train, test = snt.ntk_predictions(K, y, lr=lr, steps=[0, 3, 50], f0=f0, K_test_train=Kt, f0_test=ft0)
    f, ft = f0.copy(), ft0.copy()
    for t in range(51):
        if t in (0, 3, 50):
            k = [0, 3, 50].index(t)
            np.testing.assert_allclose(train[k], f, atol=1e-12)
            np.testing.assert_allclose(test[k], ft, atol=1e-12)
        grad = f - y
        f, ft = f - lr * K @ grad, ft - lr * Kt @ grad
    limit, test_limit = snt.ntk_predictions(K, y, lr=lr, steps=np.inf, K_test_train=Kt)
    np.testing.assert_allclose(limit, y, atol=1e-8)
    np.testing.assert_allclose(test_limit, snt.kernel_regression(K, y, Kt), atol=1e-8)


def test_ntk_predictions_on_a_singular_kernel_match_plain_gd_loop():
    """Duplicated inputs make K singular: along its null space the train residual never moves, and the test
    predictions sum η·t on the zero eigenvalues; the plain loop is the oracle, the limit is the min-norm fit."""
    rng = np.random.default_rng(13)
    X = unit_rows(rng, 12, 4)
    X[[7, 8, 9]] = X[[0, 1, 0]]  # three duplicates: rank 9
    Xt = unit_rows(rng, 5, 4)
    y = rng.uniform(-1, 1, 12)
    K, Kt = snt.bias_ntk(X, 0.8), snt.bias_ntk(Xt, 0.8, X)
    w = np.linalg.eigvalsh(K)
    assert w[2] < 1e-12 * w[-1] < w[3]
    f0, ft0 = rng.normal(0, 0.1, 12), rng.normal(0, 0.1, 5)
    lr = 1.5 / w[-1]
    checkpoints = [0, 1, 7, 60, 400]
    # a test block from the same kernel sees nothing of K's null space; an arbitrary one (any linear read-out of the
    # residual) sees it grow by η·t along the null directions, where the train residual never moves
    for read_out in (Kt, rng.standard_normal((5, 12))):
        train, test = snt.ntk_predictions(K, y, lr=lr, steps=checkpoints, f0=f0, K_test_train=read_out, f0_test=ft0)
        f, ft = f0.copy(), ft0.copy()
        for t in range(max(checkpoints) + 1):
            if t in checkpoints:
                k = checkpoints.index(t)
                np.testing.assert_allclose(train[k], f, atol=1e-10)
                np.testing.assert_allclose(test[k], ft, atol=1e-9)
            grad = f - y
            f, ft = f - lr * K @ grad, ft - lr * read_out @ grad
    # t → ∞ from f0 = 0: the least-squares fit K⁺y on the range of K
    limit, test_limit = snt.ntk_predictions(K, y, lr=lr, steps=np.inf, K_test_train=Kt)
    P = K @ np.linalg.pinv(K, rcond=1e-10)
    np.testing.assert_allclose(limit, P @ y, atol=1e-8)
    np.testing.assert_allclose(test_limit, Kt @ np.linalg.pinv(K, rcond=1e-10) @ y, atol=1e-8)


def test_kernel_regression_with_ridge_matches_solve():
    rng = np.random.default_rng(8)
    X = unit_rows(rng, 10, 3)
    K = snt.bias_ntk(X, 0.5)
    y = rng.normal(size=10)
    expected = K[:2] @ np.linalg.solve(K + 0.1 * np.eye(10), y)
    np.testing.assert_allclose(snt.kernel_regression(K, y, K[:2], ridge=0.1), expected)


def test_kernel_bad_input():
    X = np.ones((3, 2))
    with pytest.raises(ValueError, match="bias: expected a number >= 0"):
        snt.bias_ntk(X, -1.0)
    with pytest.raises(ValueError, match="bias: expected a finite number"):
        snt.bias_ntk(X, np.inf)
    with pytest.raises(ValueError, match="Y: expected 2 columns"):
        snt.bias_ntk(X, 1.0, np.ones((2, 3)))
    with pytest.raises(ValueError, match="X: expected finite values"):
        snt.bias_ntk(np.array([[np.nan, 1.0]]), 1.0)
    with pytest.raises(ValueError, match="lr: the t → ∞ limit needs"):
        snt.ntk_predictions(np.eye(2) * 10, np.ones(2), lr=1.0, steps=np.inf)
    with pytest.raises(ValueError, match="steps: expected whole numbers"):
        snt.ntk_predictions(np.eye(2), np.ones(2), lr=0.1, steps=1.5)
    with pytest.raises(TypeError, match="net"):
        snt.empirical_ntk(None, X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        snt.lambda_min(np.eye(3))


@pytest.mark.parametrize("scale_rows", [False, True])
def test_bias_ntk_diagonal_is_exact(scale_rows):
    from scipy.special import ndtr

    rng = np.random.default_rng(9)
    X = unit_rows(rng, 50, 6)
    if scale_rows:
        X *= rng.uniform(0.5, 2.0, (50, 1))
    norms = np.linalg.norm(X, axis=1)
    for bias in (0.0, 1.0, 3.0):
        K = snt.bias_ntk(X, bias)
        np.testing.assert_allclose(np.diag(K), (norms**2 + 1) * ndtr(-bias / norms), rtol=1e-14, atol=1e-16)
        np.testing.assert_array_equal(K, K.T)
