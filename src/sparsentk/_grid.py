"""Resumable grids of independent runs: one atomically written result file per configuration.

Studies that run many configurations (:func:`sparsentk.sweep`, the width, initialization and conditioning studies)
go through :func:`run_grid`. Durable state lives in the files, not in the engine that runs them, so any
:class:`concurrent.futures.Executor` can run the grid: the calling process (the default), a local process pool
(``workers=N``) or a cluster (``dask.distributed``'s ``Client(address).get_executor()``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparsentk._io import atomic_write_json, to_json
from sparsentk._validate import check_int

#: Version of the record format written for each configuration.
RECORD_FORMAT = "sparsentk.grid/1"


def _version() -> str:
    from sparsentk import __version__

    return __version__


def _fn_name(fn: Callable) -> str:
    """``module.qualname`` of ``fn`` (of the wrapped function for a ``functools.partial``)."""
    inner = getattr(fn, "func", fn)
    return f"{getattr(inner, '__module__', '?')}.{getattr(inner, '__qualname__', type(inner).__name__)}"


def _canonical(config: Mapping, index: int) -> dict[str, Any]:
    """The configuration as it reads back from JSON (NumPy scalars to numbers, tuples to lists), or a clear error."""
    if not isinstance(config, Mapping):
        raise TypeError(f"grid: expected a sequence of dicts, got {type(config).__name__} at position {index}")
    try:
        return json.loads(to_json(dict(config)))
    except (TypeError, ValueError) as err:
        raise TypeError(f"grid: configuration {index} is not JSON-serializable ({err}): {config!r}") from err


def config_key(config: Mapping, fn: Callable) -> str:
    """Hash of the configuration, the function and the package version: the name of the configuration's file."""
    text = json.dumps({"config": config, "fn": _fn_name(fn), "version": _version()}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


@dataclass
class GridResult:
    """The records of a grid, in configuration order.

    Each record is a dict with ``config``, ``status`` (``"done"`` or ``"failed"``), ``result`` (the function's
    dict, ``None`` when failed), ``error`` (the traceback's last line and the traceback, when failed),
    ``seconds``, ``key`` and ``reused`` (``True`` when read back from a finished file).
    """

    records: list[dict[str, Any]]

    @property
    def results(self) -> list[dict[str, Any] | None]:
        """The results in configuration order (``None`` for failed configurations)."""
        return [r["result"] for r in self.records]

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Records of the configurations that failed."""
        return [r for r in self.records if r["status"] != "done"]

    def table(self) -> list[dict[str, Any]]:
        """One row per finished configuration: its configuration merged with its result, in configuration order."""
        return [{**r["config"], **r["result"]} for r in self.records if r["status"] == "done"]


def _run_one(fn: Callable, config: dict[str, Any], retries: int) -> dict[str, Any]:
    """Run ``fn(config)``, catching every exception into a failed record (runs in the worker)."""
    start = time.perf_counter()
    for attempt in range(retries + 1):
        try:
            result = fn(dict(config))
            if not isinstance(result, Mapping):
                raise TypeError(f"fn: expected a dict as the result, got {type(result).__name__}")
            result = json.loads(to_json(dict(result)))
            return {"status": "done", "result": result, "error": None, "attempts": attempt + 1,
                    "seconds": time.perf_counter() - start}
        except Exception as err:  # a failing configuration is recorded, the grid goes on
            error = {"message": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
    return {"status": "failed", "result": None, "error": error, "attempts": retries + 1,
            "seconds": time.perf_counter() - start}


def _limit_threads(threads: int) -> None:
    """Process-pool initializer: share the cores among the workers (BLAS, OpenMP and numba threads)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)


def make_executor(workers: int = 1, scheduler: str | None = None, *, timeout: float = 10.0) -> Executor | None:
    """The executor behind the CLI's ``--workers N`` and ``--scheduler ADDRESS``.

    ``scheduler`` connects to a running ``dask.distributed`` scheduler and returns its executor; ``workers > 1``
    gives a local process pool whose workers share the cores (``spawn`` start method: safe with BLAS and numba
    threads); otherwise ``None`` (run in the calling process). An unreachable scheduler is a ``ValueError`` after
    ``timeout`` seconds.
    """
    workers = check_int(workers, "workers", minimum=1)
    if scheduler is not None:
        try:
            from distributed import Client
        except ImportError as err:  # pragma: no cover - the dask extra is installed in CI
            raise ValueError("scheduler: needs dask.distributed (pip install 'sparsentk[dask]')") from err
        try:
            client = Client(scheduler, timeout=f"{timeout}s")
        except (OSError, TimeoutError) as err:
            raise ValueError(f"scheduler: cannot connect to a Dask scheduler at {scheduler!r}: {err}") from err
        return client.get_executor()
    return None if workers == 1 else _process_pool(workers, max(1, (os.cpu_count() or 1) // workers))


def _process_pool(workers: int, threads: int) -> ProcessPoolExecutor:
    import multiprocessing

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_limit_threads,
                               initargs=(threads,))


def _read_done(path: Path, config: dict[str, Any], key: str) -> dict[str, Any] | None:
    """A finished record for ``config`` from ``path``, or ``None`` (missing, corrupt, failed or another config)."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if (not isinstance(saved, dict) or saved.get("format") != RECORD_FORMAT or saved.get("key") != key
            or saved.get("config") != config or saved.get("status") != "done"):
        return None
    return saved


def run_grid(
    fn: Callable[[dict[str, Any]], Mapping[str, Any]],
    grid: Sequence[Mapping[str, Any]],
    out: str | os.PathLike | None,
    *,
    executor: Executor | None = None,
    workers: int = 1,
    resume: bool = True,
    progress: Callable[[int, int, dict[str, Any], dict[str, Any]], None] | None = None,
    retries: int = 0,
) -> GridResult:
    """Run ``fn`` on every configuration of ``grid``, one result file per configuration, resumable.

    Parameters
    ----------
    fn : callable
        ``fn(config) -> dict``: a module-level function (picklable for process pools and clusters; a
        ``functools.partial`` of one is fine) taking one configuration and returning a JSON-serializable dict.
    grid : sequence of dict
        The configurations (JSON-serializable values), run and reported in this order. Duplicates are refused.
    out : path or None
        Folder of the result files ``<key>.json``, where ``key`` hashes the configuration, ``fn``'s name and the
        package version; written atomically as each configuration finishes. ``None`` keeps everything in memory.
    executor : concurrent.futures.Executor, optional
        Runs the configurations (for example ``dask.distributed.Client(address).get_executor()``). Default: the
        calling process when ``workers == 1``, else a local process pool (:func:`make_executor`).
    workers : int
        Processes of the default pool.
    resume : bool
        Reuse the files of configurations that finished; failed, corrupt or missing ones run again.
    progress : callable, optional
        ``progress(done, total, config, record)`` after each configuration (reused ones included).
    retries : int
        How many times a failing configuration is tried again before it is recorded as failed.

    Returns
    -------
    GridResult
        Records in configuration order; a configuration that raises is recorded as failed and the others go on.
        A worker process that dies marks its configuration failed. Interrupting the grid (Ctrl-C) keeps every file
        already written.
    """
    if not callable(fn):
        raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
    if isinstance(grid, Mapping) or isinstance(grid, str | bytes):
        raise TypeError(f"grid: expected a sequence of configuration dicts, got {type(grid).__name__}")
    configs = [_canonical(c, i) for i, c in enumerate(grid)]
    workers = check_int(workers, "workers", minimum=1)
    retries = check_int(retries, "retries", minimum=0)
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError(f"executor: expected a concurrent.futures.Executor, got {type(executor).__name__}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress: expected a callable, got {type(progress).__name__}")
    keys = [config_key(c, fn) for c in configs]
    seen: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key in seen:
            raise ValueError(f"grid: configurations {seen[key]} and {i} are equal: {configs[i]!r}")
        seen[key] = i
    folder = None if out is None else Path(out)
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"out: cannot create the folder {os.fspath(folder)!r}: {err}") from err

    total = len(configs)
    records: list[dict[str, Any] | None] = [None] * total
    done = 0

    def finish(i: int, outcome: dict[str, Any], reused: bool = False) -> None:
        nonlocal done
        record = {"format": RECORD_FORMAT, "key": keys[i], "fn": _fn_name(fn), "version": _version(),
                  "config": configs[i], **{k: outcome[k] for k in ("status", "result", "error", "seconds")},
                  "reused": reused}
        if folder is not None and not reused:
            atomic_write_json(folder / f"{keys[i]}.json", {k: v for k, v in record.items() if k != "reused"})
        records[i] = record
        done += 1
        if progress is not None:
            progress(done, total, configs[i], record)

    pending = []
    for i in range(total):
        saved = _read_done(folder / f"{keys[i]}.json", configs[i], keys[i]) if folder and resume else None
        if saved is not None:
            finish(i, saved, reused=True)
        else:
            pending.append(i)

    if executor is None and workers == 1:
        for i in pending:
            finish(i, _run_one(fn, configs[i], retries))
    elif executor is not None:
        lost, queued = _drain(executor, fn, configs, pending, retries, finish)
        for i in lost + queued:  # only a process-pool executor breaks; its configurations are failed, not lost
            finish(i, _died(f"the executor's worker pool broke while running configuration {i}"))
    else:
        _run_local_pool(workers, fn, configs, pending, retries, finish)
    return GridResult([r for r in records if r is not None])


def _died(message: str) -> dict[str, Any]:
    return {"status": "failed", "result": None, "seconds": math.nan, "error": {"message": message, "traceback": ""}}


def _drain(pool: Executor, fn: Callable, configs: list[dict], indices: list[int], retries: int, finish: Callable,
           in_flight: int | None = None) -> tuple[list[int], list[int]]:
    """Run ``indices`` on ``pool``, recording each as it completes, with a bounded number in flight.

    Returns the configurations lost when the pool broke (a worker process died): those in flight, and those not
    yet submitted. Both are empty when every configuration was recorded.
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    in_flight = in_flight or max(2, 2 * (getattr(pool, "_max_workers", None) or os.cpu_count() or 2))
    queue = list(indices)
    futures: dict[Future, int] = {}
    try:
        while queue or futures:
            while queue and len(futures) < in_flight:
                try:
                    futures[pool.submit(_run_one, fn, configs[queue[0]], retries)] = queue[0]
                except BrokenProcessPool:  # a worker died before this submission: the pool refuses new work
                    return list(futures.values()), queue
                queue.pop(0)
            finished, _ = wait(list(futures), return_when=FIRST_COMPLETED)
            broken = []
            for future in finished:
                i = futures.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    broken.append(i)
                    continue
                except Exception as err:  # e.g. a cluster-side error for this task
                    outcome = _died(f"{type(err).__name__}: {err}")
                finish(i, outcome)
            if broken:
                return broken + list(futures.values()), queue
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return [], []


def _run_local_pool(workers: int, fn: Callable, configs: list[dict], pending: list[int], retries: int,
                    finish: Callable) -> None:
    """A local process pool that survives dying workers: when the pool breaks, the configurations that were in
    flight run again one at a time in fresh pools, so only the one that kills its process is recorded as failed."""
    queue = pending
    while queue:
        pool = make_executor(workers)
        try:
            lost, queue = _drain(pool, fn, configs, queue, retries, finish)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        for i in lost:
            alone = _process_pool(1, max(1, (os.cpu_count() or 1) // workers))  # a crash stays contained
            try:
                died, _ = _drain(alone, fn, configs, [i], retries, finish, in_flight=1)
            finally:
                alone.shutdown(wait=True, cancel_futures=True)
            if died:
                finish(i, _died(f"the worker process died while running configuration {i} (killed, out of memory "
                                "or crashed); it was run again alone and died again"))
