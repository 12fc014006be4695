r"""Kernel ridge regression with the bias-generalized NTK at scale: matrix-free conjugate gradients over row panels.

.. math::

    \alpha = (H^\infty + \lambda I)^{-1} y, \qquad \hat f(x) = H^\infty(x, X)\,\alpha,
    \qquad H^\infty_{ij} = (x_i\cdot x_j + 1)\,P(g\cdot x_i \ge B,\ g\cdot x_j \ge B)

(P1, Section 3; paper-notes §2; :math:`\lambda = 0` is the minimum-norm interpolant, the infinitely wide network
trained to zero loss). The n × n kernel is never formed: a product :math:`(H^\infty + \lambda I)V` runs over row
panels :math:`H^\infty(X_{lo:hi}, X)`, computed by :func:`sparsentk.bias_ntk`, kept when they fit a memory budget
(float64 or float32) and recomputed otherwise. With a ``dask.distributed`` client the panels are Dask tasks
(:mod:`sparsentk.distributed.dask`).

Conjugate gradients run on all right-hand sides at once (one CG recurrence per column, one pass over the panels
per iteration for all columns: the panels are the cost), preconditioned by a Nyström approximation
:math:`\hat H = U\hat\Lambda U^\top` of rank r (Frangella, Tropp, Udell, "Randomized Nyström preconditioning",
SIAM J. Matrix Anal. Appl. 44(2), 2023, arXiv 2110.02820):

.. math::

    P^{-1} = (\hat\lambda_r + \mu)\,U(\hat\Lambda + \mu I)^{-1}U^\top + (I - UU^\top), \qquad \mu = \lambda,

so that the preconditioned condition number is about :math:`(\lambda_{r+1}(H^\infty) + \lambda)/\lambda` and CG
converges in tens of iterations when r reaches the kernel's effective dimension.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
from scipy.sparse.linalg import LinearOperator
from threadpoolctl import threadpool_limits

from sparsentk._io import atomic_save_npy
from sparsentk._memory import require_memory
from sparsentk._panels import (
    LocalPanels,
    Progress,
    budget_bytes,
    default_panel_rows,
    kernel_block,
    load_rows,
    panel_bounds,
)
from sparsentk._validate import check_choice, check_dtype, check_float, check_int, check_matrix
from sparsentk.kernels import bias_ntk

#: ``solver="auto"`` solves directly (Cholesky of the n × n kernel) up to this many rows, by CG above.
DIRECT_MAX_ROWS = 4096
#: Default Nyström rank (capped at n).
DEFAULT_RANK = 1000
SOLVERS = ("auto", "direct", "cg")
PRECONDITIONERS = ("nystrom", "none")


def _check_rows(X: Any, name: str) -> tuple[np.ndarray, Path | None]:
    """An (n, d) float64 array (a memory map for a ``.npy`` path) and the path, if one was given."""
    if isinstance(X, str | os.PathLike):
        path = Path(X)
        rows = load_rows(path)
        check_matrix(rows, name)  # finite, 2-D (scans the file once)
        if rows.dtype != np.float64:  # read into memory as float64; the file is not what the workers need
            return np.asarray(rows, dtype=np.float64), None
        return rows, path
    return check_matrix(X, name, dtype=np.float64), None


def _check_targets(y: Any, n: int) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"y: expected shape (n,) or (n, k) with n = {n} rows of X, got shape {np.shape(y)}")
    arr = check_matrix(arr, "y", dtype=np.float64)
    if arr.shape[0] != n:
        raise ValueError(f"y: expected {n} rows (one per row of X), got shape {np.shape(y)}")
    return arr


def _check_cache(cache: Any) -> Any:
    if isinstance(cache, bool) or (isinstance(cache, str) and cache == "auto"):
        return cache
    raise ValueError(f"cache: expected 'auto', True or False, got {cache!r}")


class KernelOperator(LinearOperator):
    r"""The operator :math:`V \mapsto (H^\infty(X, X) + \lambda I)V` over row panels, never forming the matrix.

    A :class:`scipy.sparse.linalg.LinearOperator` (use it with ``scipy.sparse.linalg.cg`` or ``minres``); one
    product with an (n, k) block passes once over the panels for all k columns.

    Parameters
    ----------
    X : array (n, d) or path to a ``.npy`` file
        Rows are inputs. A path is memory-mapped in-process and loaded by the Dask workers.
    bias : float
        :math:`B \ge 0`.
    ridge : float
        :math:`\lambda \ge 0`, added on the diagonal.
    client : dask.distributed.Client, optional
        Run the panels as Dask tasks (extra ``dask``); see :mod:`sparsentk.distributed.dask`.
    panel_rows : int, optional
        Rows per panel; default: about 256 MiB of float64 per panel (with a client, also at least 4 panels per
        worker thread).
    cache : "auto", True or False
        Keep computed panels: ``"auto"`` keeps as many as fit ``memory_budget`` (the rest are recomputed at every
        product), ``True`` keeps all, ``False`` none.
    cache_dtype : float32 or float64
        Storage of cached panels. float32 halves the memory; products are still accumulated in float64, and a
        solve is then that of the float32-rounded kernel (entries change by ≤ 6e-8 relative; the solution by ~κ·6e-8).
    memory_budget : int, optional
        Bytes for cached panels; default half of the available memory (in-process) or of the cluster's workers'
        memory limits.
    data_dir : path, optional
        With a client and an array ``X``: folder where ``X`` is written once as ``.npy`` for the workers to load
        (default: the system's temporary folder; must be shared with remote workers). Removed by :meth:`close`.
    progress : callable(stage, done, total), optional
        Called after each cached panel (stage ``"cache"``).
    """

    def __init__(
        self,
        X: Any,
        bias: float,
        ridge: float = 0.0,
        *,
        client: Any = None,
        panel_rows: int | None = None,
        cache: Any = "auto",
        cache_dtype: Any = np.float64,
        memory_budget: int | None = None,
        data_dir: str | os.PathLike | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.bias = check_float(bias, "bias", minimum=0.0)
        self.ridge = check_float(ridge, "ridge", minimum=0.0)
        rows, path = _check_rows(X, "X")
        n = rows.shape[0]
        if panel_rows is not None:
            panel_rows = check_int(panel_rows, "panel_rows", minimum=1)
        cache = _check_cache(cache)
        cache_dtype = check_dtype(cache_dtype, "cache_dtype")
        if memory_budget is not None:
            memory_budget = check_int(memory_budget, "memory_budget", minimum=0)
        self.X = rows
        self._temp: list[Path] = []
        self._data_dir = Path(tempfile.gettempdir() if data_dir is None else data_dir)
        if client is None:
            self.backend: Any = LocalPanels(rows, self.bias, panel_rows or default_panel_rows(n), cache, cache_dtype,
                                            budget_bytes(memory_budget))
        else:
            from sparsentk.distributed.dask import DaskPanels, check_client

            check_client(client)
            if path is None:
                path = self._write(rows)
            self.backend = DaskPanels(client, path, rows.shape, self.bias, panel_rows, cache, cache_dtype,
                                      memory_budget)
        super().__init__(dtype=np.float64, shape=(n, n))
        try:
            self.backend.prepare(progress)
        except BaseException:
            self.close()
            raise

    @property
    def panels(self) -> list[tuple[int, int]]:
        """``(lo, hi)`` row bounds of the panels."""
        return self.backend.bounds

    @property
    def cached_panels(self) -> int:
        """How many panels are kept (the leading ones)."""
        return self.backend.n_cached

    @property
    def cache_bytes(self) -> int:
        """Bytes held by cached panels (in-process, or on the workers)."""
        return self.backend.cache_bytes

    def _matmat(self, V: np.ndarray) -> np.ndarray:
        V = np.ascontiguousarray(V, dtype=np.float64)
        out = self.backend.matmat(V)
        if self.ridge:
            out += self.ridge * V
        return out

    def _matvec(self, v: np.ndarray) -> np.ndarray:
        return self._matmat(np.reshape(v, (-1, 1)))[:, 0]

    def _adjoint(self) -> KernelOperator:
        return self  # symmetric

    def _write(self, rows: np.ndarray) -> Path:
        """Write ``rows`` once as float64 ``.npy`` in ``data_dir`` for the workers (removed by :meth:`close`)."""
        path = self._data_dir / f"sparsentk-X-{uuid.uuid4().hex}.npy"
        self._temp.append(path)
        atomic_save_npy(path, np.ascontiguousarray(rows, dtype=np.float64))
        return path

    def predict(self, X_test: Any, coef: Any) -> np.ndarray:
        r"""Predictions :math:`H^\infty(X_{test}, X)\,\alpha` over panels of test rows (Dask tasks with a client).

        ``coef`` has shape (n,) or (n, k); the result has shape (n_test,) or (n_test, k).
        """
        T, path = _check_rows(X_test, "X_test")
        if T.shape[1] != self.X.shape[1]:
            raise ValueError(f"X_test: expected {self.X.shape[1]} columns to match X, got shape {T.shape}")
        A = np.asarray(coef, dtype=np.float64)
        if A.shape[:1] != (self.shape[0],) or A.ndim > 2:
            raise ValueError(f"coef: expected shape ({self.shape[0]},) or ({self.shape[0]}, k), got {A.shape}")
        rows = self.backend.bounds[0][1]  # the panel height
        if not hasattr(self.backend, "predict"):
            return kernel_predict(T, self.X, self.bias, A, panel_rows=rows)
        flat = self.backend.predict(self._write(T) if path is None else path, T.shape[0], rows, A.reshape(len(A), -1))
        return flat.reshape(T.shape[0], *A.shape[1:])

    def columns(self, idx: Any) -> np.ndarray:
        r""":math:`H^\infty(X, X_{idx})` (without the ridge), shape (n, len(idx))."""
        return self.backend.columns(np.asarray(idx, dtype=np.int64))

    def close(self) -> None:
        """Release cached panels (and Dask futures, and the ``.npy`` written for the workers)."""
        self.backend.close()
        for path in self._temp:
            path.unlink(missing_ok=True)
        self._temp.clear()

    def __enter__(self) -> KernelOperator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class NystromPreconditioner:
    r"""Nyström preconditioner :math:`P^{-1} = (\hat\lambda_r + \mu)U(\hat\Lambda + \mu I)^{-1}U^\top + I - UU^\top`.

    Built from the kernel's columns at ``landmarks`` (:math:`C = H^\infty(X, X_S)`, :math:`W = C_S`):
    :math:`\hat H = C W^{+} C^\top = U\hat\Lambda U^\top` (W's eigenvalues below ``r·ε·max`` dropped, then a thin QR
    and SVD of :math:`C\,V\Lambda^{-1/2}`). Frangella, Tropp, Udell (2023).
    """

    U: np.ndarray
    eigenvalues: np.ndarray
    shift: float
    landmarks: np.ndarray = field(repr=False)

    @property
    def rank(self) -> int:
        return int(self.eigenvalues.shape[0])

    def __call__(self, R: np.ndarray) -> np.ndarray:
        if self.rank == 0:
            return R.copy()
        lam, mu = self.eigenvalues, self.shift
        scale = (lam[-1] + mu) / (lam + mu) - 1.0
        return R + self.U @ (scale[:, None] * (self.U.T @ R))


def nystrom(op: KernelOperator, rank: int, *, seed: int = 0, shift: float | None = None) -> NystromPreconditioner:
    """A rank-``rank`` Nyström preconditioner of ``op`` from ``rank`` landmarks drawn uniformly without replacement.

    ``shift`` is μ (default: the operator's ridge, or the smallest kept Nyström eigenvalue when the ridge is 0).
    """
    n = op.shape[0]
    rank = min(check_int(rank, "rank", minimum=1), n)
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    S = np.sort(rng.choice(n, size=rank, replace=False))
    C = op.columns(S)
    # The factorizations run on one BLAS thread: OpenBLAS's threaded eigh/QR slow down tenfold or more when the
    # cores are shared (measured: QR of 10 000 × 1000 in 60 s on 2 threads against 7 s on one, on a busy machine);
    # the products around them keep every thread.
    with threadpool_limits(limits=1, user_api="blas"):
        w, V = scipy.linalg.eigh(C[S])
    keep = w > max(w[-1], 0.0) * rank * np.finfo(np.float64).eps * 10
    if not keep.any():
        return NystromPreconditioner(np.zeros((n, 0)), np.zeros(0), 1.0, S)
    B = C @ (V[:, keep] / np.sqrt(w[keep]))
    with threadpool_limits(limits=1, user_api="blas"):
        Q, R = np.linalg.qr(B)
        Us, s, _ = np.linalg.svd(R)
    U = Q @ Us
    lam = s**2
    mu = (op.ridge if op.ridge > 0 else float(lam[-1])) if shift is None else check_float(shift, "shift",
                                                                                           positive=True)
    return NystromPreconditioner(U, lam, mu, S)


def conjugate_gradients(
    A: Any,
    B: np.ndarray,
    *,
    M: Any = None,
    tol: float = 1e-6,
    maxiter: int = 500,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Preconditioned CG on every column of ``B`` at once: one product ``A @ P`` per iteration for all columns.

    Textbook PCG (Saad, *Iterative Methods for Sparse Linear Systems*, Alg. 9.1) run column-wise:

    .. math::

        \alpha_j = \frac{r_j^\top z_j}{p_j^\top A p_j},\quad x_j \mathrel{+}= \alpha_j p_j,\quad
        r_j \mathrel{-}= \alpha_j A p_j,\quad z_j = M r_j,\quad
        p_j \leftarrow z_j + \frac{r_j^{\top} z_j}{r_{j,\text{old}}^\top z_{j,\text{old}}}\,p_j.

    A column stops when :math:`\|r_j\| \le \text{tol}\,\|b_j\|`; only the unconverged columns enter later products.
    (``scipy.sparse.linalg.cg`` gives the same iterates for one column, and works on :class:`KernelOperator` too,
    but solves one right-hand side per call, so k columns would cost k passes over the panels per iteration, and
    its callback does not see the residual.)

    Returns
    -------
    x : ndarray (n, k)
    residuals : ndarray (iterations + 1, k)
        Relative residual norms :math:`\|r_j\|/\|b_j\|` (recursive) after each iteration; frozen once converged.
    converged : ndarray of bool (k,)
    """
    n, k = B.shape
    X = np.zeros((n, k))
    R = B.copy()
    bnorm = np.linalg.norm(B, axis=0)
    bnorm_safe = np.where(bnorm > 0, bnorm, 1.0)
    res = np.linalg.norm(R, axis=0) / bnorm_safe
    history = [res.copy()]
    active = res > tol
    Z = R.copy() if M is None else M(R)
    P = Z.copy()
    rz = np.einsum("ij,ij->j", R, Z)
    for it in range(1, maxiter + 1):
        if not active.any():
            break
        cols = np.flatnonzero(active)
        AP = A @ P[:, cols]
        pAp = np.einsum("ij,ij->j", P[:, cols], AP)
        if np.any(pAp <= 0):
            bad = cols[pAp <= 0]
            warnings.warn(f"conjugate_gradients: the operator is not positive definite along column(s) {bad.tolist()}"
                          " (pᵀAp ≤ 0); those columns stop", RuntimeWarning, stacklevel=2)
            active[bad] = False
            keep = pAp > 0
            cols, AP, pAp = cols[keep], AP[:, keep], pAp[keep]
        alpha = rz[cols] / pAp
        X[:, cols] += alpha * P[:, cols]
        R[:, cols] -= alpha * AP
        res[cols] = np.linalg.norm(R[:, cols], axis=0) / bnorm_safe[cols]
        history.append(res.copy())
        if progress is not None:
            progress("cg", it, maxiter)
        active[cols] = res[cols] > tol
        cols = np.flatnonzero(active)
        if cols.size == 0:
            break
        Zc = R[:, cols].copy() if M is None else M(R[:, cols])
        rz_new = np.einsum("ij,ij->j", R[:, cols], Zc)
        P[:, cols] = Zc + (rz_new / rz[cols]) * P[:, cols]
        rz[cols] = rz_new
    return X, np.array(history), ~active & (res <= tol)


@dataclass(frozen=True)
class RidgeResult:
    r"""The result of :func:`kernel_ridge`.

    Attributes
    ----------
    coef : ndarray (n,) or (n, k)
        Dual coefficients :math:`\alpha = (H^\infty + \lambda I)^{-1} y`.
    predictions : ndarray (n_test,) or (n_test, k), or None
        :math:`H^\infty(X_{test}, X)\,\alpha` when ``X_test`` was given.
    solver : str
        ``"direct"`` or ``"cg"``.
    iterations : int
        CG iterations (0 for the direct solver).
    residuals : ndarray (iterations + 1, k)
        Relative residual norms :math:`\|y_j - (H^\infty+\lambda I)\alpha_j\| / \|y_j\|` per iteration and column.
    converged : bool
        Every column reached ``tol``.
    rank : int
        Rank of the Nyström preconditioner (0: none).
    panels, cached_panels : int
        Number of row panels, and how many were kept in memory.
    cache_bytes : int
        Bytes of kept panels.
    seconds : dict
        Wall time per stage: ``"cache"``, ``"preconditioner"``, ``"solve"``, ``"predict"``.
    """

    coef: np.ndarray
    predictions: np.ndarray | None
    solver: str
    iterations: int
    residuals: np.ndarray
    converged: bool
    rank: int
    panels: int
    cached_panels: int
    cache_bytes: int
    seconds: dict[str, float]


def kernel_predict(
    X_test: Any, X: Any, bias: float, coef: Any, *, panel_rows: int | None = None
) -> np.ndarray:
    r"""Predictions :math:`H^\infty(X_{test}, X)\,\alpha`, computed over panels of test rows (bounded memory).

    ``coef`` has shape (n,) or (n, k); the result has shape (n_test,) or (n_test, k).
    """
    bias = check_float(bias, "bias", minimum=0.0)
    X, _ = _check_rows(X, "X")
    T, _ = _check_rows(X_test, "X_test")
    if T.shape[1] != X.shape[1]:
        raise ValueError(f"X_test: expected {X.shape[1]} columns to match X, got shape {T.shape}")
    A = np.asarray(coef, dtype=np.float64)
    if A.shape[:1] != (X.shape[0],) or A.ndim > 2:
        raise ValueError(f"coef: expected shape ({X.shape[0]},) or ({X.shape[0]}, k), got {A.shape}")
    rows = default_panel_rows(X.shape[0]) if panel_rows is None else check_int(panel_rows, "panel_rows", minimum=1)
    out = np.empty((T.shape[0], *A.shape[1:]))
    for lo, hi in panel_bounds(T.shape[0], rows):
        out[lo:hi] = kernel_block(T, bias, lo, hi, X) @ A
    return out


def kernel_ridge(
    X: Any,
    y: Any,
    bias: float,
    ridge: float,
    *,
    X_test: Any = None,
    client: Any = None,
    solver: str = "auto",
    panel_rows: int | None = None,
    cache: Any = "auto",
    cache_dtype: Any = np.float64,
    memory_budget: int | None = None,
    tol: float = 1e-6,
    maxiter: int = 500,
    preconditioner: str | None = "nystrom",
    rank: int | None = None,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> RidgeResult:
    r"""Kernel ridge regression with the bias-generalized NTK: :math:`\alpha = (H^\infty + \lambda I)^{-1} y`.

    .. math::

        \hat f(x) = H^\infty(x, X)\,(H^\infty(X, X) + \lambda I)^{-1} y

    (P1, Section 3: with :math:`\lambda = 0`, the :math:`t\to\infty` limit of training the infinitely wide network
    from zero output). ``solver="direct"`` forms the n × n kernel and solves by Cholesky (a pseudo-inverse when
    it fails); ``solver="cg"`` never forms it: Nyström-preconditioned conjugate gradients over row panels (see
    :mod:`sparsentk.ridge`), all columns of ``y`` sharing each pass over the panels. ``"auto"``: direct up to
    ``DIRECT_MAX_ROWS`` rows without a client, CG otherwise.

    Parameters
    ----------
    X : array (n, d) or path to a ``.npy`` file
        Training inputs (rows). A path is memory-mapped, and with a client loaded by the workers themselves.
    y : array (n,) or (n, k)
        Targets; k columns (e.g. one-vs-rest labels) are solved together.
    bias : float
        :math:`B \ge 0`.
    ridge : float
        :math:`\lambda \ge 0`.
    X_test : array (n_test, d) or path to a ``.npy`` file, optional
        Inputs to predict.
    client : dask.distributed.Client, optional
        Compute the panels, and the predictions, as Dask tasks (CG only).
    solver : {"auto", "direct", "cg"}
    panel_rows, cache, cache_dtype, memory_budget, data_dir
        Panels and their cache; see :class:`KernelOperator`.
    tol : float
        CG stops a column when :math:`\|r_j\| \le \text{tol}\,\|y_j\|`.
    maxiter : int
        CG iterations at most (a ``RuntimeWarning`` if some column has not converged).
    preconditioner : {"nystrom", None}
        Nyström preconditioner of rank ``rank`` (default ``min(n, DEFAULT_RANK)``) with landmarks drawn from
        ``seed``; ``None`` for plain CG.
    progress : callable(stage, done, total), optional
        Called with stage ``"cache"`` (panels kept), ``"cg"`` (iterations) and ``"predict"``.

    Returns
    -------
    RidgeResult
        Coefficients, predictions, iterations and residual history.

    Examples
    --------
    >>> import numpy as np, sparsentk as snt
    >>> X = np.eye(3)
    >>> res = snt.kernel_ridge(X, [1.0, 0.0, 0.0], bias=0.0, ridge=0.1, solver="cg", tol=1e-12)
    >>> np.round(res.coef, 4).tolist()
    [0.9926, -0.1838, -0.1838]
    """
    bias = check_float(bias, "bias", minimum=0.0)
    ridge = check_float(ridge, "ridge", minimum=0.0)
    solver = check_choice(solver, "solver", SOLVERS)
    precond = check_choice("none" if preconditioner is None else preconditioner, "preconditioner", PRECONDITIONERS)
    tol = check_float(tol, "tol", positive=True)
    maxiter = check_int(maxiter, "maxiter", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    _check_cache(cache)
    check_dtype(cache_dtype, "cache_dtype")
    rows, path = _check_rows(X, "X")
    n = rows.shape[0]
    Y = _check_targets(y, n)
    T, path_test, predictions = None, None, None
    if X_test is not None:
        T, path_test = _check_rows(X_test, "X_test")
        if T.shape[1] != rows.shape[1]:
            raise ValueError(f"X_test: expected {rows.shape[1]} columns to match X, got shape {T.shape}")
    rank = min(n, DEFAULT_RANK) if rank is None else check_int(rank, "rank", minimum=1)
    if solver == "auto":
        solver = "direct" if client is None and n <= DIRECT_MAX_ROWS else "cg"
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    if solver == "direct":
        require_memory(2 * 8 * n * n, "solver", "the direct solver (two n × n float64 matrices)")
        K = bias_ntk(rows, bias)
        A = K + ridge * np.eye(n)
        try:
            coef = scipy.linalg.solve(A, Y, assume_a="pos")
        except np.linalg.LinAlgError:
            coef = scipy.linalg.lstsq(A, Y)[0]
        residuals = (np.linalg.norm(Y - A @ coef, axis=0) / np.where((b := np.linalg.norm(Y, axis=0)) > 0, b, 1))
        residuals = residuals[None, :]
        iterations, converged, used_rank, panels, cached, cache_bytes = 0, True, 0, 1, 1, K.nbytes
        seconds["solve"] = time.perf_counter() - start
    else:
        op = KernelOperator(rows if path is None else path, bias, ridge, client=client, panel_rows=panel_rows,
                            cache=cache, cache_dtype=cache_dtype, memory_budget=memory_budget, data_dir=data_dir,
                            progress=progress)
        try:
            seconds["cache"] = time.perf_counter() - start
            start = time.perf_counter()
            M = nystrom(op, rank, seed=seed) if precond == "nystrom" else None
            used_rank = 0 if M is None else M.rank
            seconds["preconditioner"] = time.perf_counter() - start
            start = time.perf_counter()
            coef, residuals, done = conjugate_gradients(op, Y, M=M, tol=tol, maxiter=maxiter, progress=progress)
            seconds["solve"] = time.perf_counter() - start
            panels, cached, cache_bytes = len(op.panels), op.cached_panels, op.cache_bytes
            if T is not None:
                start = time.perf_counter()
                predictions = op.predict(T if path_test is None else path_test, coef)
                seconds["predict"] = time.perf_counter() - start
        finally:
            op.close()
        iterations = residuals.shape[0] - 1
        converged = bool(done.all())
        if not converged:
            warnings.warn(
                f"kernel_ridge: CG did not reach tol={tol:g} in {iterations} iterations (maxiter={maxiter}); "
                f"largest relative residual {residuals[-1].max():.3g}. Raise maxiter or rank, or the ridge.",
                RuntimeWarning,
                stacklevel=2,
            )
    if T is not None and solver == "direct":
        start = time.perf_counter()
        predictions = kernel_predict(T, rows, bias, coef, panel_rows=panel_rows)
        seconds["predict"] = time.perf_counter() - start
    if T is not None and progress is not None:
        progress("predict", 1, 1)
    if np.ndim(y) == 1:
        coef = coef[:, 0]
        predictions = None if predictions is None else predictions[:, 0]
    return RidgeResult(
        coef=coef,
        predictions=predictions,
        solver=solver,
        iterations=iterations,
        residuals=residuals,
        converged=converged,
        rank=used_rank,
        panels=panels,
        cached_panels=cached,
        cache_bytes=int(cache_bytes),
        seconds=seconds,
    )
