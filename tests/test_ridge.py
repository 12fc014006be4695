"""Matrix-free kernel ridge regression (sparsentk.ridge): panels, CG, Nyström, the sklearn solver, errors.

Oracles: the in-memory kernel ``bias_ntk(X)`` (the product), ``numpy.linalg.solve`` on it (the solution), SciPy's
``cg`` on the same operator (the CG recurrence), and a textbook Owen's-T loop for a few entries of the panels.
"""

import warnings

import numpy as np
import pytest
from scipy.sparse.linalg import cg
from scipy.special import ndtr, owens_t

import sparsentk as snt
from conftest import unit_rows
from sparsentk.ridge import KernelOperator, conjugate_gradients, kernel_ridge, nystrom
from sparsentk.sklearn import BiasNTKRegressor


def _data(seed=0, n=120, d=4):
    rng = np.random.default_rng(seed)
    return unit_rows(rng, n, d), rng


def _owen_entry(x, z, bias):
    """(x·z + 1) P(Z1 ≥ B/|x|, Z2 ≥ B/|z|) by Owen (1956), written out for one pair (h, k > 0, |ρ| < 1)."""
    nx, nz = np.linalg.norm(x), np.linalg.norm(z)
    h, k, rho = bias / nx, bias / nz, x @ z / (nx * nz)
    s = np.sqrt(1 - rho**2)
    p = 0.5 * (ndtr(-h) + ndtr(-k)) - owens_t(h, (k - rho * h) / (h * s)) - owens_t(k, (h - rho * k) / (k * s))
    return (x @ z + 1) * p


@pytest.mark.parametrize("bias", [0.0, 1.5])
@pytest.mark.parametrize("cache", [True, False, "auto"])
def test_matvec_equals_in_memory_kernel(bias, cache):
    X, rng = _data(n=97)
    K = snt.bias_ntk(X, bias)
    V = rng.standard_normal((97, 3))
    with KernelOperator(X, bias, 0.25, panel_rows=20, cache=cache) as op:
        assert op.panels[0] == (0, 20) and op.panels[-1] == (80, 97)
        assert op.cached_panels == (0 if cache is False else 5)
        np.testing.assert_allclose(op @ V, K @ V + 0.25 * V, rtol=0, atol=1e-12)
        np.testing.assert_allclose(op.matvec(V[:, 0]), K @ V[:, 0] + 0.25 * V[:, 0], rtol=0, atol=1e-12)


def test_panels_unequal_norms_and_independent_entries():
    X, rng = _data(n=50)
    X = X * rng.uniform(0.5, 2.0, (50, 1))  # Owen's T path
    X[20] = 0.0  # a zero row (never active at B > 0)
    K = snt.bias_ntk(X, 1.0)
    v = rng.standard_normal(50)
    with KernelOperator(X, 1.0, panel_rows=16, cache=False) as op:
        np.testing.assert_allclose(op @ v, K @ v, rtol=0, atol=1e-12)
        C = op.columns([3, 40])
    for i, j in [(0, 3), (45, 40), (10, 3)]:
        col = 0 if j == 3 else 1
        assert abs(C[i, col] - _owen_entry(X[i], X[j], 1.0)) < 1e-12
    diag = (np.sum(X[3] ** 2) + 1) * ndtr(-1.0 / np.linalg.norm(X[3]))
    assert abs(C[3, 0] - diag) < 1e-14


def test_memory_budget_caches_leading_panels_and_float32():
    X, rng = _data(n=100)
    K = snt.bias_ntk(X, 1.0)
    v = rng.standard_normal(100)
    budget = 2 * 25 * 100 * 8
    with KernelOperator(X, 1.0, panel_rows=25, memory_budget=budget) as op:
        assert op.cached_panels == 2 and op.cache_bytes == budget
        np.testing.assert_allclose(op @ v, K @ v, rtol=0, atol=1e-12)
    with KernelOperator(X, 1.0, panel_rows=25, cache=True, cache_dtype=np.float32) as op:
        assert op.cache_bytes == 100 * 100 * 4
        np.testing.assert_allclose(op @ v, K @ v, rtol=0, atol=1e-6 * np.abs(K).sum(axis=1).max())


@pytest.mark.parametrize(("cache", "bias", "ridge", "rows"), [(True, 0.0, 1e-2, 40), (False, 1.0, 1e-1, 60)])
def test_cg_equals_direct_solve(cache, bias, ridge, rows):
    X, rng = _data(n=120, d=5)
    Y = np.column_stack([np.sin(3 * X[:, 0]), np.sign(X[:, 1]), rng.standard_normal(120)])
    Xt = unit_rows(rng, 20, 5)
    K = snt.bias_ntk(X, bias)
    expected = np.linalg.solve(K + ridge * np.eye(120), Y)
    res = kernel_ridge(X, Y, bias, ridge, X_test=Xt, solver="cg", panel_rows=rows, cache=cache,
                       cache_dtype=np.float64, tol=1e-13, rank=60)
    assert res.solver == "cg" and res.converged and res.rank == 60 and res.iterations > 5
    assert res.cached_panels == (120 // rows if cache else 0) and res.panels == 120 // rows
    np.testing.assert_allclose(res.coef, expected, rtol=0, atol=1e-8 * np.abs(expected).max())
    np.testing.assert_allclose(res.predictions, snt.bias_ntk(Xt, bias, X) @ expected, rtol=0,
                               atol=1e-8 * np.abs(expected).max())
    assert res.residuals.shape == (res.iterations + 1, 3)
    assert np.all(res.residuals[-1] <= 1e-13) and np.all(res.residuals[0] == 1.0)
    single = kernel_ridge(X, Y[:, 0], bias, ridge)  # "auto": direct at this size
    assert single.solver == "direct" and single.coef.shape == (120,) and single.iterations == 0
    np.testing.assert_allclose(single.coef, expected[:, 0], rtol=0, atol=1e-10 * np.abs(expected).max())


def test_cg_recurrence_matches_scipy_cg():
    X, rng = _data(n=80)
    y = rng.standard_normal(80)
    with KernelOperator(X, 0.5, 1e-2, panel_rows=30) as op:
        ours, history, done = conjugate_gradients(op, y[:, None], tol=1e-12, maxiter=500)
        theirs, info = cg(op, y, rtol=1e-12, maxiter=500)
    assert info == 0 and done.all()
    np.testing.assert_allclose(ours[:, 0], theirs, rtol=0, atol=1e-9 * np.abs(theirs).max())
    assert np.all(np.diff(history[:, 0]) < 5)  # recorded every iteration


def test_nystrom_at_least_halves_iterations():
    rng = np.random.default_rng(0)
    X = unit_rows(rng, 300, 3)  # low dimension: fast spectral decay, ill-conditioned without preconditioning
    y = np.sin(3 * X[:, 0]) + 0.1 * rng.standard_normal(300)
    plain = kernel_ridge(X, y, 1.0, 1e-2, solver="cg", tol=1e-10, preconditioner=None, maxiter=2000)
    nys = kernel_ridge(X, y, 1.0, 1e-2, solver="cg", tol=1e-10, rank=40, seed=0)
    assert plain.converged and nys.converged and plain.rank == 0
    assert nys.iterations <= plain.iterations // 2, (nys.iterations, plain.iterations)
    np.testing.assert_allclose(nys.coef, plain.coef, rtol=0, atol=1e-7 * np.abs(plain.coef).max())


def test_nystrom_full_rank_is_exact_inverse():
    X, rng = _data(n=40)
    with KernelOperator(X, 1.0, 0.1) as op:
        M = nystrom(op, 40, seed=3)
        A = snt.bias_ntk(X, 1.0) + 0.1 * np.eye(40)
        R = rng.standard_normal((40, 2))
        # rank n: P = (λ_n + μ)^{-1} (K + μI), so P^{-1} A is a multiple of the identity
        PA = M(A)
        np.testing.assert_allclose(PA, PA[0, 0] * np.eye(40), rtol=0, atol=1e-8 * PA[0, 0])
        assert M(R).shape == (40, 2) and M.rank == 40


def test_path_input_progress_and_determinism(tmp_path):
    X, rng = _data(n=60)
    np.save(tmp_path / "X.npy", X)
    y = rng.standard_normal(60)
    events = []
    a = kernel_ridge(tmp_path / "X.npy", y, 1.0, 1e-2, solver="cg", cache=True, panel_rows=25, tol=1e-10,
                     rank=10, seed=5, progress=lambda s, d, t: events.append((s, d, t)), X_test=X[:4])
    b = kernel_ridge(X, y, 1.0, 1e-2, solver="cg", cache=True, panel_rows=25, tol=1e-10, rank=10, seed=5)
    np.testing.assert_array_equal(a.coef, b.coef)
    assert [e for e in events if e[0] == "cache"] == [("cache", 1, 3), ("cache", 2, 3), ("cache", 3, 3)]
    assert [e[1] for e in events if e[0] == "cg"] == list(range(1, a.iterations + 1))
    assert events[-1] == ("predict", 1, 1) and set(a.seconds) == {"cache", "preconditioner", "solve", "predict"}
    np.testing.assert_allclose(snt.kernel_predict(X[:4], X, 1.0, a.coef), a.predictions, rtol=0, atol=1e-13)


def test_not_converged_warns():
    X, rng = _data(n=60)
    with pytest.warns(RuntimeWarning, match="maxiter=2"):
        res = kernel_ridge(X, rng.standard_normal(60), 1.0, 1e-4, solver="cg", maxiter=2, preconditioner=None)
    assert not res.converged and res.iterations == 2


def test_regressor_cg_solver_and_check_estimator():
    from sklearn.utils.estimator_checks import check_estimator

    X, _ = _data(n=90)
    y = np.column_stack([X[:, 0], np.sign(X[:, 1])])
    direct = BiasNTKRegressor(bias=1.0, ridge=1e-2).fit(X, y)
    iterative = BiasNTKRegressor(bias=1.0, ridge=1e-2, solver="cg", tol=1e-12, rank=20).fit(X, y)
    assert iterative.n_iter_ > 1 and direct.n_iter_ == 1
    np.testing.assert_allclose(iterative.dual_coef_, direct.dual_coef_, rtol=0,
                               atol=1e-8 * np.abs(direct.dual_coef_).max())
    np.testing.assert_allclose(iterative.predict(X[:5]), direct.predict(X[:5]), rtol=0, atol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        check_estimator(BiasNTKRegressor(bias=0.0, ridge=1e-3, solver="cg", rank=20))  # B = 0: the fast path
    with pytest.raises(ValueError, match="solver"):
        BiasNTKRegressor(solver="qr").fit(X, y)
    with pytest.raises(ValueError, match="max_iter"):
        BiasNTKRegressor(solver="cg", max_iter=0).fit(X, y)
    with pytest.raises(TypeError, match="random_state"):
        BiasNTKRegressor(solver="cg", random_state=np.random.RandomState(0)).fit(X, y)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"X": np.full((3, 2), np.nan)}, ValueError, "X: expected finite"),
        ({"X": np.ones(3)}, ValueError, "X: expected a 2-D"),
        ({"y": np.ones(5)}, ValueError, "y: expected 4 rows"),
        ({"y": np.ones((4, 2, 2))}, ValueError, "y: expected shape"),
        ({"bias": -1.0}, ValueError, "bias"),
        ({"ridge": -1.0}, ValueError, "ridge"),
        ({"solver": "lu"}, ValueError, "solver: expected one of"),
        ({"preconditioner": "jacobi"}, ValueError, "preconditioner"),
        ({"cache": "yes"}, ValueError, "cache: expected"),
        ({"cache_dtype": np.int32}, TypeError, "cache_dtype"),
        ({"tol": 0.0}, ValueError, "tol"),
        ({"maxiter": 0}, ValueError, "maxiter"),
        ({"rank": 0}, ValueError, "rank"),
        ({"panel_rows": 0, "solver": "cg"}, ValueError, "panel_rows"),
        ({"X_test": np.ones((2, 3))}, ValueError, "X_test: expected 2 columns"),
        ({"X": "/nonexistent/X.npy"}, ValueError, "X: expected a readable .npy"),
    ],
)
def test_bad_inputs(kwargs, error, match):
    args = {"X": np.eye(4, 2) + 0.1, "y": np.ones(4), "bias": 1.0, "ridge": 0.1, **kwargs}
    X, y, bias, ridge = (args.pop(k) for k in ("X", "y", "bias", "ridge"))
    with pytest.raises(error, match=match):
        kernel_ridge(X, y, bias, ridge, **args)


def test_operator_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="memory_budget"):
        KernelOperator(np.eye(3), 1.0, memory_budget=-1)
    with pytest.raises(ValueError, match="cache: caching every panel needs"):
        KernelOperator(np.ones((400_000, 1)), 1.0, cache=True)  # 1.2 TiB: refused before any work
    (tmp_path / "bad.npy").write_bytes(b"")
    with pytest.raises(ValueError, match=r"X: expected a readable \.npy"):
        KernelOperator(tmp_path / "bad.npy", 1.0)
    with pytest.raises(ValueError, match="coef: expected shape"):
        snt.kernel_predict(np.eye(3), np.eye(3), 1.0, np.ones(4))
