r"""Dask backend of the kernel operator: row panels of :math:`H^\infty(X, X)` as ``dask.distributed`` tasks.

Used by :class:`sparsentk.KernelOperator` and :func:`sparsentk.kernel_ridge` when a ``client`` is given (extra
``dask``). Design:

- ``X`` is never scattered. Every task loads it from a ``.npy`` path with ``np.load(..., mmap_mode="r")`` (memoized
  per worker process), so any result a lost worker held can be rebuilt from the task's lineage.
- Panels that fit the cluster's memory (``memory_budget``, default half the sum of the workers' memory limits) are
  computed once and held as futures on the workers; a product ``H V`` is then one small task per panel, run where
  the panel lives. Panels that do not fit are recomputed inside the product task (streamed).
- The block ``V`` enters the graph once per product as the argument of a task (not scattered), so it too is
  recomputable.
- Each task uses one numba thread, like the one BLAS thread Dask's nanny sets (``OMP_NUM_THREADS=1``): the
  parallelism is across tasks. Start workers with ``threads_per_worker=1`` and one process per core.

A killed worker's panels are recomputed by the scheduler when a later product needs them; the CG iteration that
was running waits for them and goes on with identical numbers (panels are deterministic).
"""

from __future__ import annotations

import functools
import os
import uuid
from pathlib import Path
from typing import Any

import numba
import numpy as np

from sparsentk._panels import (
    MEMORY_SHARE,
    Progress,
    available_memory,
    count_cached,
    default_panel_rows,
    kernel_block,
    kernel_panel,
    load_rows,
    panel_bounds,
    panel_matmat,
)
from sparsentk.kernels import bias_ntk

#: With ``panel_rows=None``, at least this many panels per worker thread (load balance, and smaller lost work).
PANELS_PER_THREAD = 4

try:
    from distributed import Client, as_completed
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "client: the Dask backend needs dask.distributed; install the extra with `pip install sparsentk[dask]`"
    ) from err


@functools.lru_cache(maxsize=4)
def _rows(path: str, stamp: tuple[int, int]) -> np.ndarray:
    """The memory-mapped rows of ``path`` (``stamp`` = (mtime_ns, size) invalidates the memo when it changes)."""
    return load_rows(path)


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_mtime_ns, st.st_size)


def _one_thread() -> None:
    numba.set_num_threads(1)


def _panel(path: str, stamp: tuple[int, int], bias: float, lo: int, hi: int, dtype: str) -> np.ndarray:
    _one_thread()
    return kernel_panel(_rows(path, stamp), bias, lo, hi).astype(dtype, copy=False)


def _product(panel: np.ndarray, V: np.ndarray) -> np.ndarray:
    return panel_matmat(panel, V)


def _stream_product(path: str, stamp: tuple[int, int], bias: float, lo: int, hi: int, V: np.ndarray) -> np.ndarray:
    _one_thread()
    return panel_matmat(kernel_panel(_rows(path, stamp), bias, lo, hi), V)


def _columns(path: str, stamp: tuple[int, int], bias: float, lo: int, hi: int, idx: np.ndarray) -> np.ndarray:
    _one_thread()
    X = _rows(path, stamp)
    return kernel_block(X, bias, lo, hi, np.array(X[idx], dtype=np.float64))


def _predict(path: str, stamp: tuple[int, int], bias: float, test: str, test_stamp: tuple[int, int], lo: int,
             hi: int, coef: np.ndarray) -> np.ndarray:
    _one_thread()
    return kernel_block(_rows(test, test_stamp), bias, lo, hi, _rows(path, stamp)) @ coef


def _forget() -> None:
    _rows.cache_clear()  # drop the memory maps (a removed file's space is freed once unmapped)


def _hold(V: np.ndarray) -> np.ndarray:
    return V


def check_client(client: Any) -> Client:
    """``client`` if it is a ``dask.distributed.Client``, else a ``TypeError`` naming the argument."""
    if not isinstance(client, Client):
        raise TypeError(f"client: expected a dask.distributed.Client, got {type(client).__name__}")
    return client


def cluster_memory(workers: dict[str, Any]) -> int:
    """Sum of the workers' memory limits in bytes (the client's available memory when they are unlimited).

    ``workers`` is ``client.scheduler_info()["workers"]``.
    """
    limits = [int(w.get("memory_limit") or 0) for w in workers.values()]
    if not limits:
        raise ValueError("client: expected a Dask client with at least one worker, got none")
    if any(limit == 0 for limit in limits):
        return available_memory()
    return sum(limits)


class DaskPanels:
    """Panels of :math:`H^\\infty(X, X)` computed by Dask tasks from the ``.npy`` file at ``path``.

    The same interface as the in-process backend (``bounds``, ``n_cached``, ``cache_bytes``, ``prepare``,
    ``matmat``, ``columns``, ``close``).
    """

    def __init__(
        self,
        client: Any,
        path: str | os.PathLike,
        shape: tuple[int, int],
        bias: float,
        rows: int | None,
        cache: Any,
        cache_dtype: np.dtype,
        memory_budget: int | None,
    ) -> None:
        self.client = check_client(client)
        self.path = Path(path).resolve()
        self.stamp = _stamp(self.path)
        self.n = shape[0]
        self.bias = bias
        if rows is None:  # about PANEL_BYTES per panel, and at least PANELS_PER_THREAD panels per worker thread
            threads = max(1, sum(int(w.get("nthreads", 1)) for w in self._workers().values()))
            rows = max(1, min(default_panel_rows(self.n), -(-self.n // (PANELS_PER_THREAD * threads))))
        self.bounds = panel_bounds(self.n, rows)
        self.cache_dtype = np.dtype(cache_dtype)
        budget = int(MEMORY_SHARE * cluster_memory(self._workers())) if memory_budget is None else int(memory_budget)
        self.n_cached = count_cached(self.bounds, self.n, cache, self.cache_dtype, budget)
        self._token = uuid.uuid4().hex
        self._panels: list[Any] = []

    def _workers(self) -> dict[str, Any]:
        return self.client.scheduler_info(n_workers=-1).get("workers", {})

    @property
    def cache_bytes(self) -> int:
        return sum((hi - lo) * self.n * self.cache_dtype.itemsize for lo, hi in self.bounds[: len(self._panels)])

    def _args(self, lo: int, hi: int) -> tuple[str, tuple[int, int], float, int, int]:
        return (str(self.path), self.stamp, self.bias, lo, hi)

    def prepare(self, progress: Progress | None = None) -> None:
        """Submit the cached panels and wait until they are held on the workers."""
        if self._panels or not self.n_cached:
            return
        # round-robin over the workers (weighted by threads), so that cached products are balanced; any worker may
        # take a panel over (work stealing, or recomputation after a worker is lost)
        slots = [addr for addr, w in sorted(self._workers().items()) for _ in range(max(1, int(w.get("nthreads", 1))))]
        futures = [
            self.client.submit(_panel, *self._args(lo, hi), self.cache_dtype.name,
                               key=f"sparsentk-panel-{self._token}-{i}", workers=[slots[i % len(slots)]],
                               allow_other_workers=True)
            for i, (lo, hi) in enumerate(self.bounds[: self.n_cached])
        ]
        for done, future in enumerate(as_completed(futures), start=1):
            future.result()  # raise a task's error here
            if progress is not None:
                progress("cache", done, len(futures))
        self._panels = futures

    def matmat(self, V: np.ndarray) -> np.ndarray:
        held = self.client.submit(_hold, V, pure=False)
        parts = []
        for i, (lo, hi) in enumerate(self.bounds):
            if i < len(self._panels):
                parts.append(self.client.submit(_product, self._panels[i], held, pure=False))
            else:
                parts.append(self.client.submit(_stream_product, *self._args(lo, hi), held, pure=False))
        out = np.empty((self.n, V.shape[1]))
        for (lo, hi), part in zip(self.bounds, self.client.gather(parts), strict=True):
            out[lo:hi] = part
        return out

    def columns(self, idx: np.ndarray) -> np.ndarray:
        futures = [self.client.submit(_columns, *self._args(lo, hi), idx, pure=False) for lo, hi in self.bounds]
        C = np.empty((self.n, len(idx)))
        for (lo, hi), part in zip(self.bounds, self.client.gather(futures), strict=True):
            C[lo:hi] = part
        X = _rows(str(self.path), self.stamp)
        C[idx] = bias_ntk(np.array(X[idx], dtype=np.float64), self.bias)
        return C

    def predict(self, test: Path, n_test: int, rows: int, coef: np.ndarray) -> np.ndarray:
        """:math:`H^\\infty(T, X)\\,\\alpha` for the test rows T in the ``.npy`` file ``test`` (panels of ``rows``)."""
        test = Path(test).resolve()
        held = self.client.submit(_hold, coef, pure=False)
        bounds = panel_bounds(n_test, rows)
        futures = [self.client.submit(_predict, str(self.path), self.stamp, self.bias, str(test), _stamp(test), lo, hi,
                                      held, pure=False) for lo, hi in bounds]
        out = np.empty((n_test, coef.shape[1]))
        for (lo, hi), part in zip(bounds, self.client.gather(futures), strict=True):
            out[lo:hi] = part
        return out

    def close(self) -> None:
        futures, self._panels = self._panels, []
        for future in futures:
            future.release()
        if self.client.status == "running":
            self.client.run(_forget, on_error="ignore")
