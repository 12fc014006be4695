r"""Gram products in row panels of general matrix products, and robust angles between rows.

Every Gram matrix in sparsentk goes through :func:`gram`:

.. math:: G = X Y^\top, \qquad G_{ij} = x_i \cdot y_j,

computed one row panel at a time as a *general* product (``gemm``) of a copied panel with the other operand.
Two reasons:

- numpy sends ``A @ A.T`` (one buffer, transposed) to a symmetric rank-k update (``syrk``), and OpenBLAS 0.3.x
  with its SkylakeX kernels segfaults there from n ≈ 16 000 at d = 784 (numpy/numpy#19685, still open), killing the
  interpreter. A product of two *different* buffers never takes that path.
- the workspace stays bounded (one panel of ``X`` and one output panel), and in the symmetric case only the upper
  triangle is computed (half the flops, like ``syrk``) and then mirrored, so the result is exactly symmetric.

Angles: :func:`row_angles` returns :math:`\theta_{ij} = \angle(x_i, y_j) \in [0, \pi]` without the
:math:`\sqrt{\epsilon}` loss of :math:`\arccos` near :math:`\rho = \pm 1`: pairs with :math:`|\rho| > 1 - \tau`
are recomputed from the unit rows as

.. math:: \theta = 2\,\mathrm{atan2}\big(\|u - v\|,\ \|u + v\|\big), \qquad u = x/\|x\|,\ v = y/\|y\|,

which is accurate to a few ulps for every angle (Kahan's formula).
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: Target number of float64 entries in one copied input panel (rows × d); panels have at most ``PANEL_MAX_ROWS`` rows.
PANEL_ENTRIES = 1 << 19
#: Rows per panel at most: 512-row general products run at full BLAS speed, and the upper-triangle panels of an
#: n × n Gram matrix then cost about (1/2 + 256/n) of a full product (the symmetric update: 1/2).
PANEL_MAX_ROWS = 512
#: Pairs with |cos θ| above 1 − NEAR_PARALLEL get their angle from the rows themselves (Kahan's formula).
NEAR_PARALLEL = 1e-3


def panel_rows(n_cols: int, dim: int, entries: int | None = None) -> int:
    """Rows per panel: the copied input panel holds about ``entries`` numbers (default ``PANEL_ENTRIES``), between 8
    and ``PANEL_MAX_ROWS`` rows. (The output panel is written in place; ``n_cols`` is kept for callers that size
    their own workspace by it.)"""
    entries = PANEL_ENTRIES if entries is None else entries
    del n_cols
    return int(max(8, min(PANEL_MAX_ROWS, entries // max(dim, 1))))


def panels(n: int, size: int):
    """Yield ``(lo, hi)`` row ranges of at most ``size`` rows covering ``range(n)``."""
    for lo in range(0, n, size):
        yield lo, min(lo + size, n)


def gram(X: np.ndarray, Y: np.ndarray | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
    r"""The Gram matrix :math:`G = X Y^\top` (``Y = None``: :math:`X X^\top`, exactly symmetric).

    Computed in row panels of general products on distinct buffers (never the symmetric rank-k update that crashes
    OpenBLAS's SkylakeX kernels for large n, numpy/numpy#19685). In the symmetric case only the upper triangle is
    computed and then mirrored. Workspace: about ``PANEL_ENTRIES`` numbers besides the output.

    Parameters
    ----------
    X : ndarray, shape (n, d)
        Float array (float32 or float64; the result has the common float type of ``X`` and ``Y``).
    Y : ndarray, shape (n', d), optional
        Second factor. ``Y is X`` (or any array sharing ``X``'s memory with the same shape) is treated as ``None``.
    out : ndarray, shape (n, n'), optional
        Output array (or view) to fill.

    Returns
    -------
    ndarray, shape (n, n')
    """
    X = np.asarray(X)
    if Y is not None:
        Y = np.asarray(Y)
        if Y.shape == X.shape and np.shares_memory(X, Y) and np.array_equal(X, Y):
            Y = None
    if X.ndim != 2 or (Y is not None and (Y.ndim != 2 or Y.shape[1] != X.shape[1])):
        raise ValueError(f"X, Y: expected 2-D arrays with equal columns, got {X.shape} and "
                         f"{None if Y is None else Y.shape}")
    n, d = X.shape
    m = n if Y is None else Y.shape[0]
    dtype = np.result_type(X.dtype, Y.dtype if Y is not None else X.dtype, np.float32)
    if out is None:
        out = np.empty((n, m), dtype=dtype)
    elif out.shape != (n, m):
        raise ValueError(f"out: expected an array of shape {(n, m)}, got {out.shape}")
    if n == 0 or m == 0:
        return out
    size = panel_rows(m, d)
    if Y is not None:
        YT = Y.T
        for lo, hi in panels(n, size):
            np.matmul(np.array(X[lo:hi], dtype=dtype, copy=True), YT, out=out[lo:hi])
        return out
    XT = X.T
    for lo, hi in panels(n, size):
        # a copied panel is a distinct buffer: numpy calls gemm, not syrk
        np.matmul(np.array(X[lo:hi], dtype=dtype, copy=True), XT[:, lo:], out=out[lo:hi, lo:])
    mirror_upper(out)
    return out


def mirror_upper(K: np.ndarray, block: int = 512) -> np.ndarray:
    """In place: copy the upper triangle of the square array ``K`` onto its lower triangle (blocked transposes)."""
    n = K.shape[0]
    for lo, hi in panels(n, block):
        K[hi:, lo:hi] = K[lo:hi, hi:].T
        diag = K[lo:hi, lo:hi]
        lower = np.tril_indices(hi - lo, -1)
        diag[lower] = diag.T[lower]
    return K


def row_norms(X: np.ndarray) -> np.ndarray:
    r"""Euclidean row norms without overflow or underflow (``hypot``-style scaling by the row's max)."""
    X = np.asarray(X, dtype=np.float64)
    scale = np.abs(X).max(axis=1, initial=0.0)
    safe = np.where(scale > 0, scale, 1.0)
    return scale * np.sqrt(np.einsum("ij,ij->i", X / safe[:, None], X / safe[:, None]))


def unit_rows(X: np.ndarray, norms: np.ndarray | None = None) -> np.ndarray:
    """Rows divided by their norms (zero rows stay zero), float64."""
    X = np.asarray(X, dtype=np.float64)
    norms = row_norms(X) if norms is None else norms
    return X / np.where(norms > 0, norms, 1.0)[:, None]


@numba.njit(cache=True)
def _kahan_angle(u, v):  # pragma: no cover - compiled
    a = 0.0
    b = 0.0
    for k in range(u.shape[0]):
        a += (u[k] - v[k]) ** 2
        b += (u[k] + v[k]) ** 2
    return 2.0 * math.atan2(math.sqrt(a), math.sqrt(b))


@numba.njit(parallel=True, cache=True)
def angles_from_cosines(C, U, V, row0, col0, symmetric, tol):  # pragma: no cover - compiled
    """In place: C_ij (cosines of unit rows U[row0 + i], V[col0 + j]) ← the angle θ_ij ∈ [0, π].

    ``arccos`` where |C_ij| ≤ 1 − tol; Kahan's 2·atan2(‖u − v‖, ‖u + v‖) from the rows elsewhere. With
    ``symmetric``, the diagonal (row0 + i == col0 + j) is exactly 0.
    """
    n, m = C.shape
    for i in numba.prange(n):
        for j in range(m):
            if symmetric and row0 + i == col0 + j:
                C[i, j] = 0.0
                continue
            c = C[i, j]
            if abs(c) > 1.0 - tol:
                C[i, j] = _kahan_angle(U[row0 + i], V[col0 + j])
            else:
                C[i, j] = math.acos(c)


def row_angles(X: np.ndarray, Y: np.ndarray | None = None) -> np.ndarray:
    r"""Angles :math:`\theta_{ij} \in [0, \pi]` between the rows of ``X`` (and ``Y``), robust near 0 and π.

    .. math::

        \theta_{ij} = \arccos\frac{x_i\cdot y_j}{\|x_i\|\|y_j\|}\ \ (|\cos\theta_{ij}| \le 1 - \tau),\qquad
        \theta_{ij} = 2\,\mathrm{atan2}(\|u_i - v_j\|, \|u_i + v_j\|)\ \ \text{otherwise},

    with :math:`\tau` = ``NEAR_PARALLEL``. Rows must be non-zero (the caller checks). The symmetric result has an
    exactly zero diagonal and is exactly symmetric.
    """
    U = unit_rows(X)
    V = U if Y is None else unit_rows(Y)
    C = gram(U, None if Y is None else V)
    angles_from_cosines(C, U, V, 0, 0, Y is None, NEAR_PARALLEL)
    if Y is None:
        mirror_upper(C)
    return C


def accumulate_hadamard(
    out: np.ndarray,
    A: np.ndarray,
    B: np.ndarray,
    scale: float,
    shift: float,
    A2: np.ndarray | None = None,
    B2: np.ndarray | None = None,
) -> np.ndarray:
    r"""In place: ``out += (A A2ᵀ) ⊙ (scale · B B2ᵀ + shift)`` in row panels (``A2 = A``, ``B2 = B`` by default).

    Symmetric case (``A2`` and ``B2`` None): only the upper triangle of ``out`` is updated; the caller mirrors once
    at the end (:func:`mirror_upper`). Workspace: two panels of ``out``'s rows (at most ~32 MB each). Every product
    is a general product of a copied panel (never ``syrk``).
    """
    symmetric = A2 is None and B2 is None
    A2 = A if A2 is None else A2
    B2 = B if B2 is None else B2
    n, m = out.shape
    size = min(panel_rows(m, max(A.shape[1], B.shape[1])), max(8, (PANEL_ENTRIES * 8) // max(m, 1)))
    for lo, hi in panels(n, size):
        col0 = lo if symmetric else 0
        P = np.array(A[lo:hi], dtype=np.float64, copy=True) @ A2[col0:].T
        Q = np.array(B[lo:hi], dtype=np.float64, copy=True) @ B2[col0:].T
        if scale != 1.0:
            Q *= scale
        if shift != 0.0:
            Q += shift
        P *= Q
        out[lo:hi, col0:] += P
    return out


@numba.njit(parallel=True, cache=True)
def _count_near(K, inv_x, inv_y, symmetric, threshold, counts):  # pragma: no cover - compiled
    n, m = K.shape
    for i in numba.prange(n):
        c = 0
        a = inv_x[i]
        for j in range(i + 1 if symmetric else 0, m):
            if abs(K[i, j]) * a * inv_y[j] > threshold:
                c += 1
        counts[i] = c


@numba.njit(parallel=True, cache=True)
def _fill_near(K, inv_x, inv_y, symmetric, threshold, offsets, rows, cols):  # pragma: no cover - compiled
    n, m = K.shape
    for i in numba.prange(n):
        p = offsets[i]
        a = inv_x[i]
        for j in range(i + 1 if symmetric else 0, m):
            if abs(K[i, j]) * a * inv_y[j] > threshold:
                rows[p] = i
                cols[p] = j
                p += 1


def near_parallel_pairs(K: np.ndarray, inv_x: np.ndarray, inv_y: np.ndarray, symmetric: bool,
                        tol: float = NEAR_PARALLEL) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j) with |K_ij|·inv_x_i·inv_y_j > 1 − tol (j > i when ``symmetric``), in row order; one compiled
    pass over a Gram matrix ``K`` (``inv`` = 1/‖row‖, 0 for zero rows)."""
    counts = np.zeros(K.shape[0], dtype=np.int64)
    _count_near(K, inv_x, inv_y, symmetric, 1.0 - tol, counts)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else counts
    total = int(counts.sum())
    rows = np.empty(total, dtype=np.intp)
    cols = np.empty(total, dtype=np.intp)
    if total:
        _fill_near(K, inv_x, inv_y, symmetric, 1.0 - tol, offsets, rows, cols)
    return rows, cols
