r"""Row panels of the bias-generalized NTK :math:`H^\infty(X, X)`, cached or streamed, in one process.

A panel is the block :math:`H^\infty(X_{lo:hi}, X)` of ``hi - lo`` full rows. It is computed by the public
:func:`sparsentk.bias_ntk` (one implementation of the formula) on distinct buffers: ``X[lo:hi]`` copied, against
the rows before and after it, and its diagonal block by ``bias_ntk(X[lo:hi])``, whose diagonal is the exact
:math:`(\|x_i\|^2 + 1)\,\bar\Phi(B/\|x_i\|)` (:math:`\rho_{ii} = 1` exactly). Assembled, the panels equal
``bias_ntk(X)`` to rounding of the Gram products (~1e-16 relative).

The same panel functions run inside Dask tasks (:mod:`sparsentk.distributed.dask`); this module holds the
in-process backend: panels that fit ``memory_budget`` are kept (float64 or float32), the rest are recomputed at
every product, so memory stays bounded by the budget plus one panel.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sparsentk._memory import require_memory
from sparsentk.kernels import bias_ntk

#: Target size in bytes of one float64 panel when ``panel_rows`` is not given.
PANEL_BYTES = 1 << 28
#: Rows per chunk when a float32 panel is multiplied in float64 (bounds the up-cast workspace).
UPCAST_ROWS = 16
#: Share of the available memory that ``memory_budget=None`` allows for cached panels.
MEMORY_SHARE = 0.5

Progress = Callable[[str, int, int], None]


def available_memory() -> int:
    """Bytes of physical memory available now (``MemAvailable`` on Linux, else free pages)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - exotic platforms
        return 1 << 30


def default_panel_rows(n: int) -> int:
    """Rows per panel so that one float64 panel is about ``PANEL_BYTES`` (at least 1, at most n)."""
    return max(1, min(n, PANEL_BYTES // (8 * n)))


def panel_bounds(n: int, rows: int) -> list[tuple[int, int]]:
    """``[(lo, hi), ...]`` covering ``range(n)`` in panels of ``rows`` rows (the last one shorter)."""
    return [(lo, min(lo + rows, n)) for lo in range(0, n, rows)]


def kernel_panel(X: np.ndarray, bias: float, lo: int, hi: int) -> np.ndarray:
    r"""The float64 panel :math:`H^\infty(X_{lo:hi}, X)`, shape ``(hi - lo, n)``, with the exact diagonal block."""
    rows = np.array(X[lo:hi], dtype=np.float64)  # its own buffer: every Gram product is a general one
    K = np.empty((hi - lo, X.shape[0]))
    # three calls, so that the pairs (i, i) are only in the symmetric block (exact diagonal, and no near-parallel
    # pairs for bias_ntk to refine in the off-diagonal blocks unless the data has near-duplicate rows)
    if lo > 0:
        K[:, :lo] = bias_ntk(rows, bias, X[:lo])
    K[:, lo:hi] = bias_ntk(rows, bias)
    if hi < X.shape[0]:
        K[:, hi:] = bias_ntk(rows, bias, X[hi:])
    return K


def kernel_block(X: np.ndarray, bias: float, lo: int, hi: int, Y: np.ndarray) -> np.ndarray:
    r""":math:`H^\infty(X_{lo:hi}, Y)` (float64) for rows of another set ``Y``."""
    return bias_ntk(np.array(X[lo:hi], dtype=np.float64), bias, Y)


def panel_matmat(K: np.ndarray, V: np.ndarray) -> np.ndarray:
    """``K @ V`` in float64; a float32 ``K`` is up-cast in chunks of ``UPCAST_ROWS`` rows (never all at once)."""
    if K.dtype == np.float64:
        return K @ V
    out = np.empty((K.shape[0], V.shape[1]))
    for a in range(0, K.shape[0], UPCAST_ROWS):
        b = min(a + UPCAST_ROWS, K.shape[0])
        out[a:b] = K[a:b].astype(np.float64) @ V
    return out


def load_rows(path: str | os.PathLike) -> np.ndarray:
    """``np.load(path, mmap_mode="r")`` of a 2-D float ``.npy`` file (not read into memory)."""
    path = Path(path)
    try:
        X = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(
            f"X: expected a readable .npy file of an (n, dim) float array, got {str(path)!r} ({err})"
        ) from err
    if X.ndim != 2 or X.dtype.kind not in "fiu" or X.shape[0] < 1:
        raise ValueError(f"X: expected an (n, dim) numeric array in {str(path)!r}, got shape {X.shape} {X.dtype}")
    return X


class LocalPanels:
    """In-process panels of :math:`H^\\infty(X, X)`: the first ones that fit ``budget`` cached, the rest streamed.

    Parameters
    ----------
    X : ndarray (n, d), float64 (possibly a read-only memory map)
    bias : float
    rows : int
        Rows per panel.
    cache : bool or "auto"
        ``True``: cache every panel; ``False``: none; ``"auto"``: as many as fit ``budget`` bytes.
    cache_dtype : float32 or float64
    budget : int
        Bytes allowed for cached panels under ``"auto"``.
    """

    def __init__(self, X: np.ndarray, bias: float, rows: int, cache: Any, cache_dtype: np.dtype, budget: int) -> None:
        self.X = X
        self.bias = bias
        self.n = X.shape[0]
        self.bounds = panel_bounds(self.n, rows)
        self.cache_dtype = np.dtype(cache_dtype)
        self.n_cached = count_cached(self.bounds, self.n, cache, self.cache_dtype, budget)
        if cache is True:
            require_memory(self.n * self.n * self.cache_dtype.itemsize, "cache", "caching every panel")
        self._cache: list[np.ndarray] = []

    @property
    def cache_bytes(self) -> int:
        return sum(a.nbytes for a in self._cache)

    def prepare(self, progress: Progress | None = None) -> None:
        """Compute and keep the cached panels (once)."""
        for i in range(len(self._cache), self.n_cached):
            lo, hi = self.bounds[i]
            self._cache.append(kernel_panel(self.X, self.bias, lo, hi).astype(self.cache_dtype, copy=False))
            if progress is not None:
                progress("cache", i + 1, self.n_cached)

    def matmat(self, V: np.ndarray) -> np.ndarray:
        """:math:`H^\\infty V` for V of shape (n, k), float64."""
        out = np.empty((self.n, V.shape[1]))
        for i, (lo, hi) in enumerate(self.bounds):
            K = self._cache[i] if i < len(self._cache) else kernel_panel(self.X, self.bias, lo, hi)
            out[lo:hi] = panel_matmat(K, V)
        return out

    def columns(self, idx: np.ndarray) -> np.ndarray:
        """:math:`H^\\infty(X, X_{idx})`, shape (n, len(idx)), with the exact diagonal at rows ``idx``."""
        Y = np.array(self.X[idx], dtype=np.float64)
        C = np.empty((self.n, len(idx)))
        for lo, hi in self.bounds:
            C[lo:hi] = kernel_block(self.X, self.bias, lo, hi, Y)
        C[idx] = bias_ntk(Y, self.bias)
        return C

    def close(self) -> None:
        self._cache.clear()


def count_cached(bounds: list[tuple[int, int]], n: int, cache: Any, dtype: np.dtype, budget: int) -> int:
    """How many leading panels to cache: all (``True``), none (``False``), or as many as fit ``budget`` bytes."""
    if cache is True:
        return len(bounds)
    if cache is False:
        return 0
    count, used = 0, 0
    for lo, hi in bounds:
        size = (hi - lo) * n * dtype.itemsize
        if used + size > budget:
            break
        used += size
        count += 1
    return count


def budget_bytes(memory_budget: Any) -> int:
    """``memory_budget`` in bytes, or ``MEMORY_SHARE`` of the available memory when ``None``."""
    if memory_budget is None:
        return int(MEMORY_SHARE * available_memory())
    return int(memory_budget)
