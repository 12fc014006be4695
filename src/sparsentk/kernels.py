r"""Neural tangent kernels of the large-bias ReLU network: infinite width (P1's bias-generalized NTK) and finite.

.. math::

    H^\infty_{ij} = (x_i\cdot x_j + 1)\; P\big(g\cdot x_i \ge B,\; g\cdot x_j \ge B\big), \quad g \sim N(0, I_d),
    \qquad
    H_{ij} = (x_i\cdot x_j + 1)\,\frac1m \sum_r 1[w_r\cdot x_i \ge b_r]\,1[w_r\cdot x_j \ge b_r].

(Yang et al., arXiv 2301.00327, Section 3; paper-notes §2.) The first factor comes from the gradient in ``w``
(``x_i·x_j``) plus the gradient in ``b`` (``1``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.special import ndtr

from sparsentk import _orthant
from sparsentk._gram import gram, near_parallel_pairs, unit_rows
from sparsentk._memory import require_memory
from sparsentk._validate import check_float, check_matrix, check_square, check_vector
from sparsentk.network import CHUNK, ShallowReLU

#: Rows whose norms agree to this relative tolerance share one threshold B/‖x‖ (error in P below 1e-12·B).
EQUAL_NORM_RTOL = 1e-13
#: Rows per block of the general (unequal-threshold) path: workspace ≈ 6 · block · n floats.
BLOCK_ROWS = 256


def orthant_probability(rho: Any, bias: Any, bias2: Any = None) -> np.ndarray:
    r"""Bivariate normal orthant probability :math:`P(Z_1 \ge B_1, Z_2 \ge B_2)`, :math:`\mathrm{corr}(Z_1,Z_2)=\rho`.

    .. math::

        P(\rho) = \bar\Phi(B)^2 + \frac{1}{2\pi}\int_{\arccos\rho}^{\pi/2} e^{-B^2/(1+\cos\theta)}\,d\theta
        \quad (B_1 = B_2 = B,\ \text{Plackett}),

    and Owen's T formula for :math:`B_1 \ne B_2`. At :math:`B = 0` this is :math:`(\pi - \arccos\rho)/(2\pi)`.
    Accurate to 1e-12 absolute for every threshold in [0, 10] and every :math:`\rho \in [-1, 1]`.

    Parameters
    ----------
    rho : array_like
        Correlations in [−1, 1]; broadcast against ``bias`` and ``bias2``.
    bias : array_like
        Threshold :math:`B_1` (any real; ``±inf`` allowed).
    bias2 : array_like, optional
        Threshold :math:`B_2`; defaults to ``bias``.

    Returns
    -------
    ndarray of float64 (the broadcast shape)
    """
    rho = np.asarray(rho, dtype=np.float64)
    if np.isnan(rho).any():
        raise ValueError("rho: expected correlations in [-1, 1], got NaN")
    if rho.size and np.abs(rho).max() > 1.0 + 1e-12:
        raise ValueError(f"rho: expected correlations in [-1, 1], got values in [{rho.min()}, {rho.max()}]")
    b1 = np.asarray(bias, dtype=np.float64)
    b2 = b1 if bias2 is None else np.asarray(bias2, dtype=np.float64)
    for name, value in (("bias", b1), ("bias2", b2)):
        if np.isnan(value).any():
            raise ValueError(f"{name}: expected thresholds that are not NaN, got {value}")
    if b1.ndim == 0 and b2.ndim == 0 and float(b1) == float(b2) and np.isfinite(b1):
        return _orthant.orthant_equal(rho, float(b1))
    return _orthant.orthant_general(rho, b1, b2)


def _check_pair(X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray | None]:
    X = check_matrix(X, "X", dtype=np.float64)
    if Y is None:
        return X, None
    return X, check_matrix(Y, "Y", dim=X.shape[1], dtype=np.float64)


def bias_ntk(X: Any, bias: float, Y: Any = None) -> np.ndarray:
    r"""The bias-generalized NTK :math:`H^\infty` between the rows of ``X`` (and ``Y``).

    .. math::

        H^\infty(x, y) = (x\cdot y + 1)\;P\Big(Z_1 \ge \frac{B}{\|x\|},\ Z_2 \ge \frac{B}{\|y\|}\Big),
        \qquad \mathrm{corr}(Z_1, Z_2) = \frac{x\cdot y}{\|x\|\,\|y\|}

    (P1, Section 3; paper-notes §2). Rows of one common norm (in particular unit rows, P1's assumption) use the
    tabulated Plackett form in a fused compiled loop over the Gram matrix; rows of different norms use Owen's T in
    blocks of ``BLOCK_ROWS`` rows. Memory is the output plus a bounded workspace. The Gram matrix comes from
    :func:`sparsentk._gram.gram` (row panels of general products: no ``syrk`` crash for large n). Pairs with
    :math:`|\rho| > 1 - 10^{-3}` take their angle from the rows, :math:`\theta = 2\,\mathrm{atan2}(\|u-v\|,
    \|u+v\|)`, and P as a function of θ, so near-parallel and near-antipodal rows keep full accuracy (an antipodal
    pair at B = 0 gives exactly 0 whatever the norms).

    A zero row has :math:`g\cdot 0 = 0`, which is :math:`\ge B` only when :math:`B = 0`: at :math:`B = 0` it is
    always active (:math:`H(0, y) = P(g\cdot y \ge 0) = 1/2`, :math:`H(0, 0) = 1`), at :math:`B > 0` never
    (:math:`H(0, y) = 0`), exactly as in the finite network with the convention :math:`1[w\cdot x \ge b]`.

    Parameters
    ----------
    X : array, shape (n, d)
    bias : float
        :math:`B \ge 0`.
    Y : array, shape (n', d), optional
        Second set of rows; ``None`` gives the exactly symmetric n × n kernel of ``X``.

    Returns
    -------
    ndarray, shape (n, n') of float64

    Examples
    --------
    >>> import numpy as np, sparsentk as snt
    >>> X = np.eye(2)
    >>> np.round(snt.bias_ntk(X, bias=0.0), 6).tolist()
    [[1.0, 0.25], [0.25, 1.0]]
    """
    X, Y = _check_pair(X, Y)
    bias = check_float(bias, "bias", minimum=0.0)
    rows = X if Y is None else Y
    require_memory(8.0 * len(X) * len(rows), "X", f"the {len(X)} × {len(rows)} kernel")
    nx, ny = np.linalg.norm(X, axis=1), np.linalg.norm(rows, axis=1)
    K = gram(X, Y)  # row panels of general products, mirrored: exactly symmetric (and no syrk crash)
    inv_x0 = np.where(nx > 0, 1.0 / np.where(nx > 0, nx, 1.0), 0.0)
    inv_y0 = np.where(ny > 0, 1.0 / np.where(ny > 0, ny, 1.0), 0.0)
    near_i, near_j = near_parallel_pairs(K, inv_x0, inv_y0, Y is None)
    near_g = K[near_i, near_j].copy()
    nonzero = np.concatenate([nx[nx > 0], ny[ny > 0]])
    ref = float(nonzero[0]) if nonzero.size else 1.0
    equal = bias == 0.0 or bool(np.all(np.abs(nonzero / ref - 1.0) <= EQUAL_NORM_RTOL))
    gram_diag = np.diagonal(K).copy() if Y is None else None
    inv_x = np.where(nx > 0, 1.0 / np.where(nx > 0, nx, 1.0), 0.0)
    inv_y = np.where(ny > 0, 1.0 / np.where(ny > 0, ny, 1.0), 0.0)
    if equal and (bias == 0.0 or bias / ref >= _orthant.TABLE_MIN_BIAS):
        _orthant.ntk_from_gram(K, inv_x, inv_y, _orthant.plackett_table(bias / ref))
    else:
        with np.errstate(divide="ignore"):
            hx = np.where(nx > 0, bias / np.where(nx > 0, nx, 1.0), np.inf)  # zero rows are fixed below
            hy = np.where(ny > 0, bias / np.where(ny > 0, ny, 1.0), np.inf)
        for lo in range(0, K.shape[0], BLOCK_ROWS):
            hi = min(lo + BLOCK_ROWS, K.shape[0])
            start = lo if Y is None else 0  # symmetric: the upper part of the block, mirrored below
            g = K[lo:hi, start:]
            rho = g * inv_x[lo:hi, None] * inv_y[None, start:]
            K[lo:hi, start:] = (g + 1.0) * _orthant.orthant_general(rho, hx[lo:hi, None], hy[None, start:])
            if Y is None:
                K[hi:, lo:hi] = K[lo:hi, hi:].T
                block = K[lo:hi, lo:hi]
                lower = np.tril_indices(hi - lo, -1)
                block[lower] = block.T[lower]
    if near_i.size:
        # near-parallel and near-antipodal pairs: the angle from the rows (Kahan), then P as a function of θ
        theta = _pair_angles(X, rows, near_i, near_j)
        if equal and (bias == 0.0 or bias / ref >= _orthant.TABLE_MIN_BIAS):
            p = _orthant.orthant_equal_theta(theta, bias / ref)
        else:
            with np.errstate(divide="ignore"):
                hx = np.where(nx > 0, bias / np.where(nx > 0, nx, 1.0), np.inf)
                hy = np.where(ny > 0, bias / np.where(ny > 0, ny, 1.0), np.inf)
            rho = np.where(theta == 0.0, 1.0, np.where(theta >= math.pi, -1.0, np.cos(theta)))
            p = _orthant.orthant_general(rho, hx[near_i], hy[near_j])
        K[near_i, near_j] = (near_g + 1.0) * p
        if Y is None:
            K[near_j, near_i] = K[near_i, near_j]
    if Y is None:
        # ρ_ii = 1 exactly (the computed cosine is 1 ± ε, and P has slope ~ 1/√(1 − ρ) there): P_ii = Φ̄(B/‖x_i‖)
        with np.errstate(divide="ignore"):
            K[np.diag_indices_from(K)] = (gram_diag + 1.0) * ndtr(-np.where(nx > 0, bias / np.where(nx > 0, nx, 1), 0))
    zx, zy = nx == 0, ny == 0
    if zx.any() or zy.any():
        fill = 0.0 if bias > 0 else 0.5
        K[zx, :] = fill
        K[:, zy] = fill
        K[np.ix_(zx, zy)] = 0.0 if bias > 0 else 1.0
    return K


def _pair_angles(X: np.ndarray, Y: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    r"""Angles :math:`2\,\mathrm{atan2}(\|u - v\|, \|u + v\|)` between unit rows ``X[rows]`` and ``Y[cols]``."""
    U, V = unit_rows(X), unit_rows(Y)
    out = np.empty(len(rows))
    for lo in range(0, len(rows), 4096):
        hi = min(lo + 4096, len(rows))
        u, v = U[rows[lo:hi]], V[cols[lo:hi]]
        out[lo:hi] = 2.0 * np.arctan2(np.linalg.norm(u - v, axis=1), np.linalg.norm(u + v, axis=1))
    return out


def empirical_ntk(net: Any, X: Any, Y: Any = None, *, layers: Any = None) -> np.ndarray:
    r"""The exact NTK of a finite network: :class:`~sparsentk.ShallowReLU`, or any model with ``_empirical_ntk``.

    Other models (:class:`~sparsentk.DeepReLU`, ...) implement a private method ``_empirical_ntk(X, Y)`` (and
    ``_empirical_ntk(X, Y, layers=...)`` when they support training a subset of layers); this function validates
    ``X`` and ``Y`` against ``net.dim`` and calls it. ``layers`` (1-based layer numbers) selects the trained layers
    of such models; it is refused for ``ShallowReLU`` (one trained layer).

    For ``ShallowReLU`` (trainable ``W`` and ``b``):

    .. math::

        H_{ij} = \langle \nabla_{W,b} f(x_i), \nabla_{W,b} f(x_j)\rangle
               = (x_i\cdot x_j + 1)\,\frac1m \sum_r 1[w_r\cdot x_i \ge b_r]\,1[w_r\cdot x_j \ge b_r]

    (:math:`a_r^2 = 1`; P1, Section 3). Computed from the activation patterns: a sparse product when the bias
    makes them sparse, dense products over neuron blocks otherwise; never a Jacobian.

    Returns
    -------
    ndarray, shape (n, n') of float64
    """
    if not isinstance(net, ShallowReLU):
        method = getattr(net, "_empirical_ntk", None)
        if method is None or not callable(method) or not isinstance(getattr(net, "dim", None), int):
            raise TypeError(
                f"net: expected a sparsentk network (ShallowReLU, DeepReLU, ...), got {type(net).__name__}")
        X = check_matrix(X, "X", dim=net.dim, dtype=np.float64)
        Y = None if Y is None else check_matrix(Y, "Y", dim=net.dim, dtype=np.float64)
        return method(X, Y) if layers is None else method(X, Y, layers=layers)
    if layers is not None:
        raise ValueError(f"layers: a ShallowReLU has one trained layer (W and b); got layers={layers!r}")
    X = check_matrix(X, "X", dim=net.dim, dtype=np.float64)
    Y = X if Y is None else check_matrix(Y, "Y", dim=net.dim, dtype=np.float64)
    same = Y is X
    W, b = net.W.astype(np.float64, copy=False), net.b.astype(np.float64, copy=False)
    counts = np.zeros((X.shape[0], Y.shape[0]))
    for lo in range(0, net.width, CHUNK):
        hi = min(lo + CHUNK, net.width)
        ax = (X @ W[lo:hi].T >= b[lo:hi])
        ay = ax if same else (Y @ W[lo:hi].T >= b[lo:hi])
        density = max(ax.mean(), ay.mean())
        if density < 0.05:
            sx = sp.csr_matrix(ax, dtype=np.float64)
            sy = sx if same else sp.csr_matrix(ay, dtype=np.float64)
            counts += (sx @ sy.T).toarray()
        else:
            fx = ax.astype(np.float64)
            counts += gram(fx, None if same else ay.astype(np.float64))
    G = gram(X, None if same else Y)
    G += 1.0
    G *= counts
    G /= net.width
    return G


def _eigvalsh(K: Any, name: str = "K") -> np.ndarray:
    K = check_square(K, name, symmetric=True)
    return scipy.linalg.eigvalsh(K)


def lambda_min(K: Any) -> float:
    r"""Least eigenvalue :math:`\lambda_{\min}(K)` of a symmetric kernel matrix (float64, symmetric solver).

    Warns when the matrix is numerically singular (:math:`|\lambda_{\min}| \le n\,\epsilon\,\lambda_{\max}`): the
    value is then dominated by rounding.
    """
    w = _eigvalsh(K)
    _warn_if_singular(w)
    return float(w[0])


def condition_number(K: Any) -> float:
    r"""Condition number :math:`\kappa = \lambda_{\max}(K) / \lambda_{\min}(K)` of a symmetric PSD kernel matrix.

    Returns ``inf`` (with a warning) when :math:`\lambda_{\min} \le 0` numerically.
    """
    w = _eigvalsh(K)
    if _warn_if_singular(w) or w[0] <= 0:
        return math.inf
    return float(w[-1] / w[0])


def _warn_if_singular(w: np.ndarray) -> bool:
    tol = len(w) * np.finfo(np.float64).eps * max(abs(w[-1]), abs(w[0]), 1e-300)
    if w[0] <= tol:
        warnings.warn(
            f"K is numerically singular: lambda_min = {w[0]:.3g} is within rounding ({tol:.3g}) of zero",
            RuntimeWarning,
            stacklevel=3,
        )
        return True
    return False


def ntk_predictions(
    K_train: Any,
    y: Any,
    *,
    lr: float,
    steps: Any,
    f0: Any = None,
    K_test_train: Any = None,
    f0_test: Any = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    r"""Predictions of the linearized network after ``t`` full-batch GD steps on :math:`\tfrac12\|f - y\|^2`.

    .. math::

        f_t = y + (I - \eta K)^t (f_0 - y), \qquad
        f_t^{\text{test}} = f_0^{\text{test}} - K_{\text{test,train}}\,K^{+}\big(I - (I - \eta K)^t\big)(f_0 - y),

    computed with one eigendecomposition :math:`K = V\Lambda V^\top` (the test formula sums
    :math:`\eta\sum_{s<t}(I-\eta K)^s = K^{+}(I - (I-\eta K)^t)` on the range of :math:`K`, exactly, including zero
    eigenvalues, where the sum is :math:`\eta t`). ``steps`` may be an integer, an array, or ``inf`` (kernel
    regression, the :math:`t\to\infty` limit when :math:`0 < \eta\lambda < 2`).

    Returns
    -------
    train : ndarray, shape (len(steps), n) (or (n,) for a scalar ``steps``)
    test : ndarray, shape (len(steps), n_test) or None
    """
    K = check_square(K_train, "K_train", symmetric=True)
    n = K.shape[0]
    y = check_vector(y, "y", length=n, dtype=np.float64)
    lr = check_float(lr, "lr", positive=True)
    f0 = np.zeros(n) if f0 is None else check_vector(f0, "f0", length=n, dtype=np.float64)
    scalar = np.ndim(steps) == 0
    t = np.atleast_1d(np.asarray(steps, dtype=np.float64))
    if np.isnan(t).any() or (t < 0).any():
        raise ValueError(f"steps: expected non-negative step counts (or inf), got {steps}")
    finite_t = t[np.isfinite(t)]
    if finite_t.size and not np.all(finite_t == np.round(finite_t)):
        raise ValueError(f"steps: expected whole numbers of steps, got {steps}")
    lam, V = scipy.linalg.eigh(K)
    lam = np.clip(lam, 0.0, None)
    tiny = lam.max(initial=0.0) * n * np.finfo(np.float64).eps  # eigenvalues at or below it are rounding of 0
    if np.isinf(t).any() and lr * lam.max() >= 2.0:
        raise ValueError(f"lr: the t → ∞ limit needs lr · lambda_max(K) < 2, got {lr * lam.max():.4g}")
    r0 = V.T @ (f0 - y)
    finite = np.isfinite(t)
    with np.errstate(over="ignore", invalid="ignore"):
        powers = (1.0 - lr * lam)[None, :] ** np.where(finite, t, 0.0)[:, None]
    powers[~finite] = np.where(lam > tiny, 0.0, 1.0)
    train = y[None, :] + (powers * r0[None, :]) @ V.T
    test = None
    if K_test_train is not None:
        Kt = check_matrix(K_test_train, "K_test_train", dim=n, dtype=np.float64)
        ft0 = np.zeros(Kt.shape[0]) if f0_test is None else check_vector(
            f0_test, "f0_test", length=Kt.shape[0], dtype=np.float64)
        safe = np.where(lam > tiny, lam, 1.0)
        summed = np.where(lam[None, :] > tiny, (1.0 - powers) / safe[None, :], lr * np.where(finite, t, 0.0)[:, None])
        test = ft0[None, :] - (summed * r0[None, :]) @ (Kt @ V).T
    if scalar:
        return train[0], None if test is None else test[0]
    return train, test


def kernel_regression(K_train: Any, y: Any, K_test_train: Any, *, ridge: float = 0.0) -> np.ndarray:
    r"""Kernel (ridge) regression predictions :math:`K_{\text{test,train}} (K + \text{ridge}\,I)^{-1} y`.

    With ``ridge = 0`` this is the :math:`t\to\infty` limit of NTK gradient descent from :math:`f_0 = 0`
    (minimum-norm interpolation by the pseudo-inverse :math:`K^{+}`, eigenvalues within rounding of 0 dropped, so
    that a singular :math:`K` gives the least-squares fit rather than a blown-up solve).
    """
    K = check_square(K_train, "K_train", symmetric=True)
    y = check_vector(y, "y", length=K.shape[0], dtype=np.float64)
    Kt = check_matrix(K_test_train, "K_test_train", dim=K.shape[0], dtype=np.float64)
    ridge = check_float(ridge, "ridge", minimum=0.0)
    if ridge == 0.0:
        # a Cholesky solve of a numerically singular K "succeeds" with a blown-up alpha: use the pseudo-inverse,
        # dropping eigenvalues within rounding of 0 (the cut of ntk_predictions' t → ∞ limit)
        lam, V = scipy.linalg.eigh(K)
        keep = lam > max(float(lam.max(initial=0.0)), 0.0) * K.shape[0] * np.finfo(np.float64).eps
        return Kt @ (V[:, keep] @ ((V[:, keep].T @ y) / lam[keep]))
    A = K + ridge * np.eye(K.shape[0])
    try:
        alpha = scipy.linalg.solve(A, y, assume_a="pos")
    except np.linalg.LinAlgError:
        alpha = scipy.linalg.lstsq(A, y)[0]
    return Kt @ alpha

