"""scikit-learn integration: KernelRidge, GaussianProcessRegressor and check_estimator."""

import numpy as np
import pytest
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import cross_val_score
from sklearn.utils.estimator_checks import check_estimator

import sparsentk as snt
from conftest import unit_rows
from sparsentk.sklearn import BiasGeneralizedNTK, BiasNTKRegressor


def test_kernel_object_with_kernel_ridge_and_gp():
    rng = np.random.default_rng(0)
    X, Xt = unit_rows(rng, 40, 5), unit_rows(rng, 10, 5)
    y = np.sin(3 * X[:, 0])
    k = BiasGeneralizedNTK(bias=1.0)
    np.testing.assert_array_equal(k(X), snt.bias_ntk(X, 1.0))
    np.testing.assert_allclose(k.diag(X), np.diag(k(X)), atol=1e-14)
    kr = KernelRidge(kernel="precomputed", alpha=1e-3).fit(k(X), y)
    pred = kr.predict(k(Xt, X))
    expected = snt.bias_ntk(Xt, 1.0, X) @ np.linalg.solve(snt.bias_ntk(X, 1.0) + 1e-3 * np.eye(40), y)
    np.testing.assert_allclose(pred, expected, atol=1e-10)
    gp = GaussianProcessRegressor(kernel=k, alpha=1e-6).fit(X, y)
    mean, std = gp.predict(Xt, return_std=True)
    assert mean.shape == (10,) and np.all(std >= 0)
    # the GP posterior written out: mean k*ᵀ(K + αI)⁻¹y, variance k(x, x) − k*ᵀ(K + αI)⁻¹k*
    A = snt.bias_ntk(X, 1.0) + 1e-6 * np.eye(40)
    Ks = snt.bias_ntk(X, 1.0, Xt)
    np.testing.assert_allclose(mean, Ks.T @ np.linalg.solve(A, y), rtol=1e-7, atol=1e-9)
    var = np.diag(snt.bias_ntk(Xt, 1.0)) - np.einsum("ij,ij->j", Ks, np.linalg.solve(A, Ks))
    np.testing.assert_allclose(std, np.sqrt(np.clip(var, 0, None)), rtol=1e-5, atol=1e-7)
    assert std.min() > 1e-3  # test points away from the data: the check above is not 0 = 0
    np.testing.assert_allclose(gp.predict(X), y, atol=1e-3)
    assert repr(k) == "BiasGeneralizedNTK(bias=1.0)"


def test_regressor_matches_kernel_regression_and_grid_search():
    rng = np.random.default_rng(1)
    X = unit_rows(rng, 30, 4)
    y = X @ rng.normal(size=4)
    model = BiasNTKRegressor(bias=0.5, ridge=1e-2).fit(X, y)
    K = snt.bias_ntk(X, 0.5)
    alpha = np.linalg.solve(K + 1e-2 * np.eye(30), y)  # an independent dense solve
    np.testing.assert_allclose(model.dual_coef_, alpha, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.predict(X[:5]), K[:5] @ alpha, rtol=1e-9, atol=1e-12)
    assert model.dual_coef_.shape == (30,) and model.n_features_in_ == 4
    scores = cross_val_score(BiasNTKRegressor(bias=0.5, ridge=1e-3), X, y, cv=3)
    assert np.all(np.isfinite(scores))
    multi = BiasNTKRegressor(bias=0.5, ridge=1e-2).fit(X, np.column_stack([y, 2 * y]))
    np.testing.assert_allclose(multi.predict(X[:3])[:, 1], 2 * model.predict(X[:3]), rtol=1e-8)


@pytest.mark.parametrize("bias", [0.0, 1.0])
def test_ridgeless_regressor_on_a_singular_kernel_is_the_least_squares_fit(bias):
    """Duplicated inputs with different labels: K is singular and no interpolant exists; ridge = 0 must give the
    least-squares fit K K⁺ y on the training inputs and K(x, X) K⁺ y elsewhere (not a blown-up solve)."""
    rng = np.random.default_rng(2)
    X = unit_rows(rng, 15, 4)
    X[[10, 11, 12]] = X[[0, 1, 2]]
    y = rng.uniform(-1, 1, 15)
    Xt = unit_rows(rng, 6, 4)
    K = snt.bias_ntk(X, bias)
    pinv = np.linalg.pinv(K, rcond=1e-10)
    model = BiasNTKRegressor(bias=bias, ridge=0.0).fit(X, y)
    np.testing.assert_allclose(model.predict(X), K @ pinv @ y, atol=1e-6)
    np.testing.assert_allclose(model.predict(Xt), snt.bias_ntk(Xt, bias, X) @ pinv @ y, atol=1e-6)
    lstsq = np.linalg.lstsq(K, y, rcond=1e-10)[0]
    np.testing.assert_allclose(model.predict(Xt), snt.bias_ntk(Xt, bias, X) @ lstsq, atol=1e-6)
    # duplicates get the mean of their labels
    np.testing.assert_allclose(model.predict(X[[0]]), (y[0] + y[10]) / 2, atol=1e-6)


def test_regressor_errors():
    with pytest.raises(Exception, match="not fitted"):
        BiasNTKRegressor().predict(np.ones((2, 2)))
    with pytest.raises(ValueError, match="bias"):
        BiasNTKRegressor(bias=-1.0).fit(np.ones((3, 2)), np.ones(3))


def test_check_estimator():
    check_estimator(BiasNTKRegressor(bias=0.5, ridge=1e-6))
