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
    np.testing.assert_allclose(gp.predict(X), y, atol=1e-3)
    assert repr(k) == "BiasGeneralizedNTK(bias=1.0)"


def test_regressor_matches_kernel_regression_and_grid_search():
    rng = np.random.default_rng(1)
    X = unit_rows(rng, 30, 4)
    y = X @ rng.normal(size=4)
    model = BiasNTKRegressor(bias=0.5, ridge=1e-2).fit(X, y)
    np.testing.assert_allclose(model.predict(X[:5]), snt.kernel_regression(snt.bias_ntk(X, 0.5), y,
                                                                            snt.bias_ntk(X[:5], 0.5, X), ridge=1e-2))
    assert model.dual_coef_.shape == (30,) and model.n_features_in_ == 4
    scores = cross_val_score(BiasNTKRegressor(bias=0.5, ridge=1e-3), X, y, cv=3)
    assert np.all(np.isfinite(scores))
    multi = BiasNTKRegressor(bias=0.5, ridge=1e-2).fit(X, np.column_stack([y, 2 * y]))
    np.testing.assert_allclose(multi.predict(X[:3])[:, 1], 2 * model.predict(X[:3]), rtol=1e-8)


def test_regressor_errors():
    with pytest.raises(Exception, match="not fitted"):
        BiasNTKRegressor().predict(np.ones((2, 2)))
    with pytest.raises(ValueError, match="bias"):
        BiasNTKRegressor(bias=-1.0).fit(np.ones((3, 2)), np.ones(3))


def test_check_estimator():
    check_estimator(BiasNTKRegressor(bias=0.5, ridge=1e-6))
