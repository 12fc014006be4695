r"""Infinite-width NTK and NNGP of a deep fully connected network with a constant threshold (paper-notes §5).

The network (our extension of P2 = Liu, Bi, Hui, Liu, arXiv 2305.08813, to P1's constant bias; conventions ours):

.. math::

    u^{(1)} = W^{(1)} x - b^{(1)},\qquad
    u^{(l)} = \sqrt{c_B/m}\;W^{(l)}\,\mathrm{relu}(u^{(l-1)}) - b^{(l)}\ (2 \le l \le L),\qquad
    f(x) = \sqrt{c_B/m}\;w\cdot\mathrm{relu}(u^{(L)}),

all weights N(0, 1), biases starting at B with :math:`\partial u/\partial b = -1`, and the variance-preserving
:math:`c_B = 1/M_2(B)`, :math:`M_2(B) = (1+B^2)\bar\Phi(B) - B\varphi(B)`, which keeps every pre-activation variance
at 1 on unit inputs and is P2's network (:math:`c = 2`) at B = 0. With :math:`\theta^{(1)} = \angle(x, y)`,
:math:`G = x\cdot y`, :math:`\beta = 1` when biases are trained (else 0), :math:`\tau = 1` when the output layer is:

.. math::

    \rho^{(l+1)} = c_B J_B(\theta^{(l)}),\quad \dot P^{(l+1)} = c_B L_B(\theta^{(l)}),\quad
    \theta^{(l+1)} = \arccos\rho^{(l+1)},\\
    \Theta^{(1)} = G + \beta^2,\quad
    \Theta^{(l+1)} = \rho^{(l+1)} + \beta^2 + \dot P^{(l+1)}\,\Theta^{(l)}\ (l < L),\quad
    \mathrm{NTK} = \tau\,\rho^{(L+1)} + \dot P^{(L+1)}\,\Theta^{(L)},\quad \mathrm{NNGP} = \rho^{(L+1)},

elementwise, with :math:`L_B` (P) and :math:`J_B` (J) the Gaussian moments of :mod:`sparsentk._moments` evaluated in
the angle (never through :math:`\arccos` of a rounded correlation). The diagonal follows from θ = 0 exactly:
:math:`\Theta^{(l)}_{ii} = (1+\beta^2)(\chi_1^l - 1)/(\chi_1 - 1)`, :math:`\chi_1 = c_B\bar\Phi(B)`.

At B = 0 the recursion is P2's (Lemma 3.1: :math:`K(x, x) = (L+1)\|x\|^2` and
:math:`\cos\varphi = \frac1{L+1}\sum_{l=0}^{L}\cos\theta^{(l)}\prod_{k=l}^{L-1}(1 - \theta^{(k)}/\pi)`), for rows of
any norm: every forward term scales with :math:`\|x\|\|y\|` (positive homogeneity). P2's own network has
:math:`c_{out} = 2` on the output, ours :math:`c_B`; the constant only rescales. neural-tangents' ``Dense`` divides
the first layer by the fan-in as well: :math:`\Theta_{NT} = K/d` at B = 0.

Evaluation. Each entry depends on its pair only through the angle θ and (at B = 0) the norm product S:
:math:`\mathrm{NTK} = S\,A(\theta) + \beta^2 C(\theta)`, :math:`\mathrm{NNGP} = S\,N(\theta)`. For large kernels
A, C, N are tabulated once per call on the θ-grid (values and first and second derivatives by forward-mode
differentiation through the layer tables; quintic Hermite) and every entry costs one table look-up, whatever the
depth. The composed table is used only if it matches the layer-by-layer recursion to ``COMPOSE_RTOL`` at every cell
midpoint; otherwise (deep chaotic networks, whose slope near θ = 0 grows like :math:`\chi_1^{L/2}`) each entry runs
through the layers one by one.

With ``layers`` a subset of the layers ``1 … L+1`` (``L+1`` is the output layer) is trained; the other layers'
terms drop out: first-layer-only training (P2's Theorem 4.2) is
:math:`(G + \beta^2)\prod_{l=2}^{L+1}\dot P^{(l)}`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np

from sparsentk import _gram, _moments, _orthant
from sparsentk._gram import _kahan_angle
from sparsentk._memory import require_memory
from sparsentk._validate import check_choice, check_float, check_int, check_matrix

#: Tolerance on ‖x‖ = 1 for B > 0 (rows whose norm is within it are treated as unit rows).
UNIT_NORM_RTOL = 1e-10


@numba.njit(inline="always")
def _horner(c, k, q, t):  # pragma: no cover - compiled
    return c[k, q, 0] + t * (c[k, q, 1] + t * (c[k, q, 2] + t * (c[k, q, 3] + t * (c[k, q, 4] + t * c[k, q, 5]))))


@numba.njit(parallel=True, cache=True)
def _deep_panel(K, NNGP, want_nngp, U, V, nx, ny, row0, col0, symmetric, tol, table, depth, train, beta2, edge):
    # pragma: no cover - compiled
    """In place: K (cosines of unit rows U[row0 + i], V[col0 + j]) ← the NTK; NNGP ← the NNGP if ``want_nngp``.

    Symmetric: only entries with col0 + j >= row0 + i are computed (the caller mirrors). The layers run outermost
    within a row, so that the entries of a row (independent chains) overlap in the processor. ``edge`` =
    (θ_edge, B², c_B, M₂, GL nodes, GL weights): angles above θ_edge take the maps from ``_moments.edge_maps``
    (small positive thresholds; θ_edge > π disables it).
    """
    edge_theta, b2, cb, m2, gl_nodes, gl_weights = edge
    n, m = K.shape
    size = table.shape[0]
    scale = size / math.pi
    first_bias = beta2 if depth > 0 else 0.0
    for i in numba.prange(n):
        start = 0
        if symmetric:
            start = max(row0 + i - col0, 0)
        count = m - start
        theta = np.empty(count)
        ntk = np.empty(count)
        rho = np.empty(count)
        s = np.empty(count)
        for jj in range(count):
            j = start + jj
            c = K[i, j]
            if symmetric and row0 + i == col0 + j:
                th = 0.0
                c = 1.0
            elif abs(c) > 1.0 - tol:
                th = _kahan_angle(U[row0 + i], V[col0 + j])
                c = math.cos(th)  # ±1 exactly for parallel and antipodal rows
            else:
                th = math.acos(c)
            sj = nx[row0 + i] * ny[col0 + j]
            theta[jj] = th
            s[jj] = sj
            rho[jj] = c
            ntk[jj] = train[0] * (sj * c + first_bias)
        for layer in range(depth):
            weight = train[layer + 1]
            add = beta2 if layer < depth - 1 else 0.0
            for jj in range(count):
                if theta[jj] > edge_theta:
                    th_next, r, pdot = _moments.edge_maps(theta[jj], b2, cb, m2, gl_nodes, gl_weights)
                    theta[jj] = th_next
                else:
                    x = theta[jj] * scale
                    k = int(x)
                    if k >= size:
                        k = size - 1
                    t = x - k
                    theta[jj] = _horner(table, k, 0, t)
                    r = _horner(table, k, 1, t)
                    pdot = _horner(table, k, 2, t)
                rho[jj] = r
                ntk[jj] = weight * (s[jj] * r + add) + pdot * ntk[jj]
        for jj in range(count):
            K[i, start + jj] = ntk[jj]
            if want_nngp:
                NNGP[i, start + jj] = s[jj] * rho[jj]


#: The composed-table path pays for itself when the kernel has more entries than this many grid nodes × 4.
COMPOSE_MIN_ENTRIES = 4 * (_moments.TABLE_SIZE + 1)
#: Accuracy the composed table must reach at every cell midpoint (relative to the kernel's largest value).
COMPOSE_RTOL = 1e-12


def _compose(table: np.ndarray, depth: int, mask: np.ndarray, theta: np.ndarray, derivatives: bool):
    r"""The whole recursion as functions of the input angle: NTK = S·A(θ) + β²·C(θ), NNGP = S·N(θ), with their first
    and second θ-derivatives by forward-mode differentiation through the layers (chain rule on the layer tables)."""
    one = np.ones_like(theta)
    zero = np.zeros_like(theta)
    w0 = mask[0]
    A = [w0 * np.cos(theta), -w0 * np.sin(theta), -w0 * np.cos(theta)]
    C = [w0 * one if depth > 0 else zero, zero, zero]
    N = [np.cos(theta), -np.sin(theta), -np.cos(theta)]
    th = [theta.copy(), one, zero]
    buf = np.empty((3, 3, len(theta)))
    for layer in range(depth):
        _moments.eval_with_derivatives(table, np.clip(th[0], 0.0, math.pi), buf)
        (T, T1, T2), (R, R1, R2), (P, P1, P2) = buf[0].copy(), buf[1].copy(), buf[2].copy()
        w = mask[layer + 1]
        add = 1.0 if layer < depth - 1 else 0.0
        dR, dP = R1 * th[1], P1 * th[1]
        ddR = R2 * th[1] ** 2 + R1 * th[2]
        ddP = P2 * th[1] ** 2 + P1 * th[2]
        A = [w * R + P * A[0], w * dR + dP * A[0] + P * A[1], w * ddR + ddP * A[0] + 2 * dP * A[1] + P * A[2]]
        C = [w * add + P * C[0], dP * C[0] + P * C[1], ddP * C[0] + 2 * dP * C[1] + P * C[2]]
        N = [R, dR, ddR]
        th = [T, T1 * th[1], T2 * th[1] ** 2 + T1 * th[2]] if derivatives else [T, one, zero]
    return A, C, N


def _composed_table(bias: float, activation: str, depth: int, mask: np.ndarray) -> np.ndarray | None:
    """Packed quintic Hermite table (size × 3 × 6) of A, C, N in θ, or None when it misses ``COMPOSE_RTOL`` at a
    cell midpoint (then the layer-by-layer kernel is used)."""
    table = _moments.layer_table(bias, activation) if depth > 0 else np.zeros((1, 3, 6))
    size = _moments.TABLE_SIZE
    h = math.pi / size
    nodes = np.linspace(0.0, math.pi, size + 1)
    A, C, N = _compose(table, depth, mask, nodes, True)
    out = np.empty((size, 3, 6))
    for q, F in enumerate((A, C, N)):
        out[:, q] = _orthant.hermite_coefficients(F[0], h * F[1], h * h * F[2])
    mid = nodes[:-1] + 0.5 * h
    exact = _compose(table, depth, mask, mid, False)
    approx = np.empty((3, 3, size))
    _moments.eval_with_derivatives(out, mid, approx)
    for q, F in enumerate(exact):
        scale = max(float(np.abs(F[0]).max()), 1.0 if q < 2 else 0.0, 1e-300)
        if float(np.abs(approx[q, 0] - F[0]).max()) > COMPOSE_RTOL * scale:
            return None
    return out


@numba.njit(parallel=True, cache=True)
def _composed_panel(K, NNGP, want_nngp, U, V, nx, ny, row0, col0, symmetric, tol, table, beta2):
    # pragma: no cover - compiled
    """In place: K (cosines) ← S·A(θ) + β²·C(θ), NNGP ← S·N(θ) from the composed table (symmetric: upper part)."""
    n, m = K.shape
    size = table.shape[0]
    scale = size / math.pi
    for i in numba.prange(n):
        start = 0
        if symmetric:
            start = max(row0 + i - col0, 0)
        for j in range(start, m):
            c = K[i, j]
            if symmetric and row0 + i == col0 + j:
                th = 0.0
            elif abs(c) > 1.0 - tol:
                th = _kahan_angle(U[row0 + i], V[col0 + j])
            else:
                th = math.acos(c)
            x = th * scale
            k = int(x)
            if k >= size:
                k = size - 1
            t = x - k
            s = nx[row0 + i] * ny[col0 + j]
            K[i, j] = s * _horner(table, k, 0, t) + beta2 * _horner(table, k, 1, t)
            if want_nngp:
                NNGP[i, j] = s * _horner(table, k, 2, t)


def _trained_mask(depth: int, layers: Any, train_output: bool) -> np.ndarray:
    mask = np.zeros(depth + 1)
    if layers is None:
        mask[:] = 1.0
    else:
        if isinstance(layers, int | np.integer):
            layers = [layers]
        try:
            chosen = [check_int(v, "layers") for v in layers]
        except TypeError as err:
            raise TypeError(f"layers: expected layer numbers in 1..{depth + 1}, got {layers!r}") from err
        if not chosen or min(chosen) < 1 or max(chosen) > depth + 1:
            raise ValueError(f"layers: expected layer numbers in 1..{depth + 1} (depth + 1 is the output), "
                             f"got {layers!r}")
        mask[[v - 1 for v in chosen]] = 1.0
    if not train_output:
        mask[depth] = 0.0
    if not mask.any():
        raise ValueError("layers: no trainable layer left (train_output=False and only the output layer chosen)")
    return mask


def _prepare_rows(X: np.ndarray, name: str, bias: float, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows and the factor each forward term carries (the norm at B = 0, else 1)."""
    norms = _gram.row_norms(X)
    if np.any(norms == 0):
        bad = int(np.argmax(norms == 0))
        raise ValueError(f"{name}: the deep kernel needs non-zero rows (the angle of a zero row is undefined), "
                         f"got a zero row at index {bad}")
    U = _gram.unit_rows(X, norms)
    if normalize:
        return U, np.ones(len(X))
    if bias == 0.0:
        return U, norms
    off = np.abs(norms - 1.0)
    if off.max() > UNIT_NORM_RTOL:
        bad = int(np.argmax(off))
        raise ValueError(
            f"{name}: with bias > 0 the variance-preserving normalization needs unit-norm rows, got norm "
            f"{norms[bad]:.6g} at row {bad}; normalize the rows or pass normalize=True"
        )
    return U, np.ones(len(X))


def deep_ntk(
    X: Any,
    depth: int,
    bias: float = 0.0,
    Y: Any = None,
    *,
    activation: str = "relu",
    train_bias: bool = True,
    train_output: bool = True,
    return_nngp: bool = False,
    layers: Sequence[int] | None = None,
    normalize: bool = False,
    progress: Callable[[int, int], Any] | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r"""Infinite-width NTK (and NNGP) of a depth-``depth`` ReLU network with constant threshold ``bias``.

    .. math::

        \Theta^{(1)} = G + \beta^2,\quad
        \Theta^{(l+1)} = c_B J_B(\theta^{(l)}) + \beta^2 + c_B L_B(\theta^{(l)})\,\Theta^{(l)},\quad
        \mathrm{NTK} = \tau\,c_B J_B(\theta^{(L)}) + c_B L_B(\theta^{(L)})\,\Theta^{(L)}

    (module docstring; paper-notes §5; P2 = arXiv 2305.08813, Lemma 3.1 at B = 0). Float64, exactly symmetric when
    ``Y`` is None, PSD up to rounding. Computed in row panels: the memory is the output plus a bounded workspace;
    each entry is one look-up in the composed θ-table, or runs through all layers in registers (module docstring);
    no :math:`\arccos` of a rounded correlation past the input (near-parallel and near-antipodal pairs take their
    angle from the rows, Kahan's formula).

    Parameters
    ----------
    X : array, shape (n, d)
        Non-zero rows. With ``bias > 0`` they must have unit norm (the normalization :math:`c_B` is for unit inputs)
        unless ``normalize=True``. At ``bias = 0`` any norms are exact (positive homogeneity).
    depth : int
        Number of hidden layers :math:`L \ge 0` (``0``: the linear model :math:`w\cdot x`, NTK :math:`\tau G`).
    bias : float
        The threshold :math:`B \ge 0` (below 0.01 input angles above 3π/4 take the layer map by direct quadrature:
        the integrand's edge near θ = π is sharper than the tables' grid there).
    Y : array, shape (n', d), optional
        Second set of rows (cross kernel).
    activation : {"relu", "linear"}
        ``"linear"`` is the linear counterpart (identity in place of the ReLU, :math:`c_B = 1/(1+B^2)`).
    train_bias, train_output : bool
        Whether the hidden biases (:math:`\beta`) and the output layer (:math:`\tau`) are trained.
    return_nngp : bool
        Also return the NNGP :math:`\rho^{(L+1)}` (the output's covariance, :math:`c_B`-scaled).
    layers : sequence of int, optional
        Train only these layers (1-based; ``depth + 1`` is the output layer); ``[1]`` is P2's Theorem 4.2.
    normalize : bool
        Divide the rows by their norms first (the kernel of the directions).
    progress : callable(done, total), optional
        Called after every row panel.

    Returns
    -------
    ntk : ndarray, shape (n, n')
    nngp : ndarray, shape (n, n') (only with ``return_nngp``)

    Examples
    --------
    >>> import numpy as np, sparsentk as snt
    >>> K = snt.deep_ntk(np.eye(2), depth=3, train_bias=False)
    >>> np.round(np.diag(K), 12).tolist()
    [4.0, 4.0]
    """
    X = check_matrix(X, "X", dtype=np.float64)
    Yc = None if Y is None or Y is X else check_matrix(Y, "Y", dim=X.shape[1], dtype=np.float64)
    depth = check_int(depth, "depth", minimum=0)
    bias = check_float(bias, "bias", minimum=0.0)
    activation = check_choice(activation, "activation", _moments.ACTIVATIONS)
    for name, flag in (("train_bias", train_bias), ("train_output", train_output), ("return_nngp", return_nngp),
                       ("normalize", normalize)):
        if not isinstance(flag, bool | np.bool_):
            raise TypeError(f"{name}: expected True or False, got {flag!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress: expected a callable(done, total) or None, got {progress!r}")
    mask = _trained_mask(depth, layers, bool(train_output))
    beta2 = 1.0 if train_bias else 0.0
    _check_overflow(depth, bias, activation, beta2)
    U, nx = _prepare_rows(X, "X", bias, bool(normalize))
    if Yc is None:
        V, ny = U, nx
    else:
        V, ny = _prepare_rows(Yc, "Y", bias, bool(normalize))
    n, m = len(U), len(V)
    symmetric = Yc is None
    require_memory(8.0 * n * m * (2 if return_nngp else 1), "X", f"the {n} × {m} deep kernel")
    composed = None
    small = activation == "relu" and 0.0 < bias < _moments.TABLE_MIN_BIAS  # layer tables exact up to EDGE_THETA
    if (n * m) // (2 if symmetric else 1) >= COMPOSE_MIN_ENTRIES and not small:
        composed = _composed_table(bias, activation, depth, mask)
    table = _moments.layer_table(bias, activation) if depth > 0 and composed is None else np.zeros((1, 3, 6))
    m2 = _moments.m2(bias, activation)
    edge = (_moments.EDGE_THETA if small else 4.0, bias * bias, 1.0 / m2, m2, _orthant._GL_NODES,
            _orthant._GL_WEIGHTS)
    K = np.empty((n, m))
    N = np.empty((n, m)) if return_nngp else np.empty((1, 1))
    size = _gram.panel_rows(m, X.shape[1])
    total = math.ceil(n / size)
    for done, (lo, hi) in enumerate(_gram.panels(n, size), start=1):
        col0 = lo if symmetric else 0
        block = K[lo:hi, col0:]
        _gram.gram(U[lo:hi], V[col0:], out=block)
        nblock = N[lo:hi, col0:] if return_nngp else N
        if composed is not None:
            _composed_panel(block, nblock, bool(return_nngp), U, V, nx, ny, lo, col0, symmetric,
                            _gram.NEAR_PARALLEL, composed, beta2)
        else:
            _deep_panel(block, nblock, bool(return_nngp), U, V, nx, ny, lo, col0, symmetric, _gram.NEAR_PARALLEL,
                        table, depth, mask, beta2, edge)
        if progress is not None:
            progress(done, total)
    if symmetric:
        _gram.mirror_upper(K)
        if return_nngp:
            _gram.mirror_upper(N)
    return (K, N) if return_nngp else K


def _check_overflow(depth: int, bias: float, activation: str, beta2: float) -> None:
    if depth == 0:
        return
    chi1 = _moments.m2(bias, activation) ** -1 * (1.0 if activation == "linear" else _moments.node_values(bias)["L"][0])
    if chi1 > 1.0:
        log_diag = math.log1p(beta2) + depth * math.log(chi1) - math.log(chi1 - 1.0)
        if log_diag > 700.0:
            raise ValueError(
                f"depth: the kernel's diagonal (1 + beta²)(chi1^L − 1)/(chi1 − 1) with chi1 = {chi1:.4g} overflows "
                f"float64 at depth {depth}; use at most {int((700 - math.log1p(beta2)) / math.log(chi1))} layers"
            )
