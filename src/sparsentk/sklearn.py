"""scikit-learn integration: the bias-generalized NTK as a kernel object and as a regressor.

``BiasGeneralizedNTK`` is a ``sklearn.gaussian_process.kernels.Kernel``: use it in ``GaussianProcessRegressor``, or
call it to precompute a Gram matrix for ``KernelRidge(kernel="precomputed")``::

    k = BiasGeneralizedNTK(bias=2.0)
    KernelRidge(kernel="precomputed", alpha=1e-3).fit(k(X_train), y_train).predict(k(X_test, X_train))

``BiasNTKRegressor`` is NTK (ridge) regression, the :math:`t\\to\\infty` limit of training the infinitely wide
network from zero output (P1; ``ridge=0`` is minimum-norm interpolation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.gaussian_process.kernels import Hyperparameter, Kernel
from sklearn.utils.validation import check_is_fitted, validate_data

from sparsentk._validate import check_choice, check_float, check_int
from sparsentk.kernels import bias_ntk, kernel_regression
from sparsentk.ridge import kernel_predict, kernel_ridge


class BiasGeneralizedNTK(Kernel):
    r"""P1's bias-generalized NTK as a scikit-learn kernel.

    .. math:: k(x, z) = (x\cdot z + 1)\,P\big(g\cdot x \ge B,\ g\cdot z \ge B\big),\qquad g \sim N(0, I).

    The bias is a fixed hyperparameter (not tuned by the GP optimizer: the kernel is not differentiable in a way
    the optimizer could use at the orthant's edges, and B is a modelling choice).
    """

    def __init__(self, bias: float = 0.0) -> None:
        self.bias = bias

    @property
    def hyperparameter_bias(self) -> Hyperparameter:
        return Hyperparameter("bias", "numeric", "fixed")

    def __call__(self, X: Any, Y: Any = None, eval_gradient: bool = False) -> Any:
        bias = check_float(self.bias, "bias", minimum=0.0)
        K = bias_ntk(X, bias, Y)
        if eval_gradient:
            if Y is not None:
                raise ValueError("eval_gradient: the gradient is only defined when Y is None")
            return K, np.empty((K.shape[0], K.shape[1], 0))
        return K

    def diag(self, X: Any) -> np.ndarray:
        """:math:`k(x, x) = (\\|x\\|^2 + 1)\\,\\bar\\Phi(B/\\|x\\|)` for each row (no n × n matrix)."""
        from sparsentk.theory import active_probability

        X = np.asarray(X, dtype=np.float64)
        norms = np.linalg.norm(X, axis=1)
        return (norms**2 + 1) * active_probability(check_float(self.bias, "bias", minimum=0.0), norms)

    def is_stationary(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"BiasGeneralizedNTK(bias={self.bias!r})"


class BiasNTKRegressor(RegressorMixin, BaseEstimator):
    r"""Kernel (ridge) regression with the bias-generalized NTK.

    .. math:: \hat f(x) = H^\infty(x, X)\,(H^\infty(X, X) + \text{ridge}\cdot I)^{-1} y.

    Parameters
    ----------
    bias : float
        :math:`B \ge 0`.
    ridge : float
        Ridge :math:`\ge 0`; 0 is the minimum-norm interpolant (the infinitely wide network trained to zero loss).
    solver : {"direct", "cg", "auto"}
        ``"direct"`` forms the n × n kernel and solves it; ``"cg"`` runs :func:`sparsentk.kernel_ridge`'s
        Nyström-preconditioned conjugate gradients over row panels, never forming the kernel; ``"auto"`` picks by n.
    tol, max_iter, rank, random_state
        CG's relative residual tolerance, iteration limit, Nyström rank (default ``min(n, 1000)``) and landmark
        seed (``solver="cg"`` only).

    Attributes
    ----------
    X_fit_ : ndarray of shape (n_samples, n_features)
    dual_coef_ : ndarray of shape (n_samples,) or (n_samples, n_targets)
    n_features_in_ : int
    n_iter_ : int
        CG iterations (1 for a direct solve: one factorization; scikit-learn expects at least 1).
    """

    def __init__(
        self,
        bias: float = 0.0,
        ridge: float = 0.0,
        *,
        solver: str = "direct",
        tol: float = 1e-8,
        max_iter: int = 500,
        rank: int | None = None,
        random_state: int = 0,
    ) -> None:
        self.bias = bias
        self.ridge = ridge
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.rank = rank
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> BiasNTKRegressor:
        """Solve for the dual coefficients on ``(X, y)``; returns ``self``."""
        bias = check_float(self.bias, "bias", minimum=0.0)
        ridge = check_float(self.ridge, "ridge", minimum=0.0)
        solver = check_choice(self.solver, "solver", ("direct", "cg", "auto"))
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True, multi_output=True)
        targets = y if y.ndim == 2 else y[:, None]
        self.n_iter_ = 1
        if solver == "direct":
            K = bias_ntk(X, bias)
            eye = np.eye(len(X))
            # one solve per target column, through the shared (pseudo-)inverse path of kernel_regression
            coef = np.column_stack([kernel_regression(K, t, eye, ridge=ridge) for t in targets.T])
        else:
            result = kernel_ridge(X, targets, bias, ridge, solver=solver,
                                  tol=check_float(self.tol, "tol", positive=True),
                                  maxiter=check_int(self.max_iter, "max_iter", minimum=1),
                                  rank=None if self.rank is None else check_int(self.rank, "rank", minimum=1),
                                  seed=check_int(self.random_state, "random_state", minimum=0))
            coef, self.n_iter_ = result.coef, max(1, result.iterations)
        self.X_fit_ = X
        self.dual_coef_ = coef if y.ndim == 2 else coef[:, 0]
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions :math:`H^\\infty(X, X_{fit})\\,\\alpha`."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return kernel_predict(X, self.X_fit_, float(self.bias), self.dual_coef_)  # row panels: bounded memory

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.target_tags.multi_output = True
        return tags
