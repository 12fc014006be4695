r"""Neuron-sharded full-batch gradient descent over MPI (``mpi4py``; extra ``mpi``).

The output of the network is a sum over neurons,

.. math::

    f(x_i) = \frac{1}{\sqrt m} \sum_{k=0}^{K-1} \sum_{r \in R_k} a_r\,\mathrm{relu}(w_r\cdot x_i - b_r),

so rank :math:`k` of :math:`K` owns the contiguous neurons :math:`R_k = [\lfloor km/K\rfloor, \lfloor (k+1)m/K
\rfloor)`, computes its partial outputs, and one all-reduce of one buffer per step — the partial outputs (n
floats), the active counts per input (n), and the statistics of the step (loss pieces, flips, counters, and the
movement maxima) — gives every rank the same residual :math:`f(x_i) - y_i`. The gradient of a neuron
(P1, paper-notes §1)

.. math::

    \nabla_{w_r} L = \frac{a_r}{\sqrt m} \sum_i (f(x_i) - y_i)\,1[w_r\cdot x_i \ge b_r]\,x_i

needs only that residual and the neuron's own row, so the update needs no communication. Every decision (revert,
divergence, stop, checkpoint commit) is taken from the reduced buffer, so the ranks agree. Maxima travel in the
same sum: each rank writes its maxima in its own slots (zeros elsewhere) and every rank takes the maximum of the
summed slots, which is exact (``x + 0 = x``).

Checkpoints are two-phase: at a checkpoint step every rank writes its rows atomically; the next step's all-reduce
carries one more number, the count of ranks that wrote, and when it equals the rank count rank 0 writes the commit
marker (with the history so far). A run resumes from the newest committed step, at any rank count.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from sparsentk._io import atomic_save_npz, atomic_write_json
from sparsentk._validate import check_choice, check_float, check_int, check_matrix, check_vector
from sparsentk.distributed._shards import NetworkSpec, _local_network, neuron_range
from sparsentk.network import ShallowReLU
from sparsentk.training import METHODS, History, TrainingDiverged, TrainingInterrupted, _resolve_method, _run, _Shard

# Every training method runs sharded: each reduces through ``_Shard.combine`` in its ``evaluate`` and implements
# ``restart`` (see ``sparsentk.training._Engine``). The function-space method (``"kernel"``) keeps on each rank the
# partial H_A and counts C of its neurons; its f-update -η H_A e plus the crossing corrections is a sum over
# neurons, so each rank reduces its partial increment of f.

_CHECKPOINT_FORMAT = "sparsentk.checkpoint/1"
#: exit status of a job ended by this module (a failed rank, or the step timeout)
ABORT_STATUS = 3
#: A resumed run's ``lr`` may differ from the checkpoint's by this relative amount (a default step size computed
#: from the sharded NTK rounds differently at another rank count); the checkpoint's value is then used.
LR_TOLERANCE = 1e-9


@dataclass
class ShardedResult:
    """What :func:`train_sharded` returns on each rank.

    Attributes
    ----------
    history : History
        The same on every rank (computed from the reduced buffers).
    W, b, a : ndarray
        This rank's rows of the trained network (neurons ``lo:hi``).
    lo, hi, width : int
        This rank's neurons and the network's width.
    bias, init, seed
        The network's settings (for :meth:`gather`).
    comm : mpi4py.MPI.Comm
    """

    history: History
    W: np.ndarray
    b: np.ndarray
    a: np.ndarray
    lo: int
    hi: int
    width: int
    bias: float
    init: str
    seed: int | None
    comm: Any

    def gather(self, root: int | None = 0) -> ShallowReLU | None:
        """Assemble the whole trained network (collective): on ``root`` only (others get ``None``), or on every
        rank when ``root`` is None. Needs the whole ``W`` in one process's memory."""
        comm = self.comm
        ranges = comm.allgather((self.lo, self.hi))
        rows = [hi - lo for lo, hi in ranges]
        dim = self.W.shape[1]
        full = None
        if root is None or comm.rank == root:
            full = (np.empty((self.width, dim), dtype=self.W.dtype), np.empty(self.width, dtype=self.b.dtype),
                    np.empty(self.width, dtype=self.a.dtype))
        for k, local in enumerate((self.W, self.b, self.a)):
            per_row = dim if k == 0 else 1
            counts = [r * per_row for r in rows]
            displs = [lo * per_row for lo, _ in ranges]
            recv = None if full is None else [full[k], (counts, displs)]
            if root is None:
                comm.Allgatherv(np.ascontiguousarray(local), recv)
            else:
                comm.Gatherv(np.ascontiguousarray(local), recv, root=root)
        if full is None:
            return None
        return _local_network(self.bias, self.init, self.seed, *full)


# ------------------------------------------------------------------------------------------------ the reduction
class _Reducer:
    """The one all-reduce of a step (``_Shard.reduce``), plus one slot that counts the ranks that wrote the pending
    checkpoint's rows."""

    def __init__(self, comm: Any) -> None:
        self.comm = comm
        self.flag = 0.0
        self.confirmed = 0.0
        self.interrupt = 0.0  # 1 after Ctrl-C on this rank; the ranks stop together when the sum is positive
        self.interrupted = False

    def __call__(self, buffer: np.ndarray, maxima: int) -> np.ndarray:
        size, rank = self.comm.size, self.comm.rank
        sums = len(buffer) - maxima
        base = sums + 1
        send = np.zeros(base + size * maxima)
        send[:sums] = buffer[:sums]
        send[sums] = self.flag + 2.0 * size * self.interrupt  # written-rows count, and interrupts (below 2·size)
        send[base + rank * maxima : base + (rank + 1) * maxima] = buffer[sums:]
        self.comm.Allreduce(MPI.IN_PLACE, send, op=MPI.SUM)
        self.confirmed = float(send[sums] % (2 * size))
        self.interrupted = bool(send[sums] >= 2 * size)
        out = np.empty(len(buffer))
        out[:sums] = send[:sums]
        if maxima:
            out[sums:] = send[base:].reshape(size, maxima).max(axis=0)
        return out


# ----------------------------------------------------------------------------------------------- failures
def _abort(comm: Any, message: str) -> None:
    """Print ``message`` and end the whole job (every rank) with :data:`ABORT_STATUS`."""
    sys.stderr.write(f"sparsentk: rank {comm.rank} of {comm.size}: {message}; ending the job\n")
    sys.stderr.flush()
    comm.Abort(ABORT_STATUS)


class _Watchdog:
    """Ends the job when no iterate finishes within ``timeout`` seconds of the previous one (a hung rank leaves
    the others waiting in the all-reduce; their watchdogs fire)."""

    def __init__(self, comm: Any, timeout: float) -> None:
        self.comm, self.timeout = comm, timeout
        self.last = time.monotonic()
        self.step = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="sparsentk-watchdog", daemon=True)

    def pet(self, t: int) -> None:
        if not self.thread.is_alive():
            self.thread.start()
        self.last, self.step = time.monotonic(), t

    def _watch(self) -> None:
        while not self.stop.wait(min(self.timeout / 4, 1.0)):
            if time.monotonic() - self.last > self.timeout:
                _abort(self.comm, f"no step finished within the timeout ({self.timeout:g} s) after step {self.step}")
                return

    def close(self) -> None:
        self.stop.set()


# --------------------------------------------------------------------------------------------- checkpoints
def _marker(folder: Path, t: int) -> Path:
    return folder / f"step-{t:09d}.json"


def _rows_file(folder: Path, t: int, lo: int, hi: int) -> Path:
    return folder / f"step-{t:09d}" / f"rows-{lo:012d}-{hi:012d}.npz"


def _committed(folder: Path) -> list[int]:
    steps = []
    for path in folder.glob("step-*.json"):
        try:
            steps.append(int(path.stem.removeprefix("step-")))
        except ValueError:
            continue
    return sorted(steps)


def _merge(ranges: list[list[int]]) -> list[tuple[int, int]]:
    """Contiguous runs of the ``[lo, hi)`` ranges."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _history_from_dict(d: dict[str, Any]) -> History:
    fields = {name: np.array([math.nan if v is None else v for v in d[name]], dtype=np.float64)
              for name in ("loss", "active_mean", "active_max", "movement_w", "movement_b", "seconds")}
    return History(
        method=d["method"], lr=float(d["lr"]), flips=np.array(d["flips"], dtype=np.int64),
        setup_seconds=float(d["setup_seconds"] or 0.0),
        stats={k: np.array([math.nan if v is None else v for v in col], dtype=np.float64)
               for k, col in d["stats"].items()},
        **fields,
    )


class _Checkpoints:
    """Two-phase checkpoints in ``folder``: ``step-T/rows-LO-HI.npz`` per rank, then ``step-T.json`` by rank 0."""

    def __init__(self, folder: Path, every: int, steps: int, comm: Any, lo: int, hi: int, width: int,
                 fingerprint: dict[str, Any], reducer: _Reducer, lr: float) -> None:
        self.folder, self.every, self.steps, self.comm, self.lr = folder, every, steps, comm, lr
        self.lo, self.hi, self.width, self.fingerprint, self.reducer = lo, hi, width, fingerprint, reducer
        self.pending: int | None = None
        self.written: list[int] = []  # checkpointed steps, in order

    def load(self) -> tuple[History, np.ndarray, np.ndarray] | None:
        """The newest committed step's history and this rank's rows of it (re-sliced from any rank count)."""
        steps = _committed(self.folder)
        if not steps:
            return None
        t = steps[-1]
        try:
            marker = json.loads(_marker(self.folder, t).read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"resume: cannot read checkpoint marker {str(_marker(self.folder, t))!r}: {err}") from err
        if marker.get("format") != _CHECKPOINT_FORMAT:
            raise ValueError(f"resume: {str(_marker(self.folder, t))!r} is not a sparsentk checkpoint marker")
        differ = sorted(k for k in self.fingerprint if marker["fingerprint"].get(k) != self.fingerprint[k])
        if not math.isclose(marker["history"]["lr"], self.lr, rel_tol=LR_TOLERANCE):
            differ.append("lr")
        if differ:
            raise ValueError(f"resume: the checkpoint in {str(self.folder)!r} was written by a different run "
                             f"(differs in {', '.join(differ)})")
        if t > self.steps:
            raise ValueError(f"steps: the newest checkpoint is at step {t}, beyond steps={self.steps}")
        W = b = None
        for flo, fhi in marker["ranges"]:
            lo, hi = max(flo, self.lo), min(fhi, self.hi)
            if lo >= hi:
                continue
            with np.load(_rows_file(self.folder, t, flo, fhi), allow_pickle=False) as data:
                if W is None:
                    W = np.empty((self.hi - self.lo, data["W"].shape[1]), dtype=data["W"].dtype)
                    b = np.empty(self.hi - self.lo, dtype=data["b"].dtype)
                W[lo - self.lo : hi - self.lo] = data["W"][lo - flo : hi - flo]
                b[lo - self.lo : hi - self.lo] = data["b"][lo - flo : hi - flo]
        if W is None or not any(flo <= self.lo and self.hi <= fhi for flo, fhi in _merge(marker["ranges"])):
            raise ValueError(f"resume: the checkpoint of step {t} does not hold neurons {self.lo}:{self.hi}")
        self.written = list(steps)
        return _history_from_dict(marker["history"]), W, b

    def writes(self, t: int) -> bool:
        """Whether iterate ``t`` is a checkpoint step (its rows are written)."""
        return t > 0 and (t % self.every == 0 or t == self.steps) and (not self.written or self.written[-1] < t)

    def on_iterate(self, t: int, net: ShallowReLU, history: History) -> None:
        """After iterate ``t``: commit the pending checkpoint (confirmed by this step's reduction), then write this
        step's rows if it is a checkpoint step."""
        if self.pending is not None:
            self._commit(history)
        if self.writes(t):
            atomic_save_npz(_rows_file(self.folder, t, self.lo, self.hi), W=net.W, b=net.b)
            self.pending = t
            self.reducer.flag = 1.0

    def finish(self, history: History) -> None:
        """Commit a checkpoint still pending after the last step (one small collective)."""
        if self.pending is not None:
            self.reducer.confirmed = float(self.comm.allreduce(self.reducer.flag, op=MPI.SUM))
            self._commit(history)

    def _commit(self, history: History) -> None:
        t = self.pending
        if self.reducer.confirmed != self.comm.size:  # cannot happen: a rank that failed to write has aborted
            raise RuntimeError(f"checkpoint of step {t}: {self.reducer.confirmed:g} of {self.comm.size} ranks wrote")
        if self.comm.rank == 0:
            ranges = [neuron_range(self.width, self.comm.size, k) for k in range(self.comm.size)]
            atomic_write_json(_marker(self.folder, t), {
                "format": _CHECKPOINT_FORMAT, "step": t, "ranges": ranges, "fingerprint": self.fingerprint,
                "history": history._truncate(t + 1).to_dict(),
            })
        self.written.append(t)
        self.pending, self.reducer.flag = None, 0.0
        # keep the two newest checkpoints: the previous one is committed (rank 0 wrote its marker before it joined
        # this reduction), so no resume needs older rows, whatever rank count wrote them
        if self.comm.rank == 0:
            for old in self.written[:-2]:
                _marker(self.folder, old).unlink(missing_ok=True)
                shutil.rmtree(_rows_file(self.folder, old, 0, 0).parent, ignore_errors=True)
        self.written = self.written[-2:]


def _fingerprint(net: ShallowReLU | NetworkSpec, X: np.ndarray, y: np.ndarray, method: str) -> dict:
    digest = hashlib.sha256()
    for array in (X, y):
        digest.update(np.ascontiguousarray(array).tobytes())
    if isinstance(net, NetworkSpec):
        network = f"{net.dim}x{net.width} bias={net.bias!r} init={net.init} seed={net.seed} {net.dtype.name}"
    else:
        h = hashlib.sha256()
        for array in (net.W, net.b, net.a):
            h.update(np.ascontiguousarray(array).tobytes())
        network = f"{net.dim}x{net.width} {net.dtype.name} sha256={h.hexdigest()}"
    return {"data": digest.hexdigest(), "network": network, "method": method}


# --------------------------------------------------------------------------------------------------- threads
def threads_per_rank(comm: Any) -> int:
    """The node's cores divided by the ranks on the node, at least 1 (collective). When the launcher bound this
    rank to fewer cores than the node has (``mpiexec -bind-to ...``), those cores."""
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        ranks_here = node.Get_size()
    finally:
        node.Free()
    cores = os.cpu_count() or 1
    mine = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return max(1, mine if mine < cores else cores // ranks_here)


class _threads:
    """numba and BLAS threads of this rank for the duration of a run."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __enter__(self) -> None:
        import numba
        from threadpoolctl import threadpool_limits

        self.numba_before = numba.get_num_threads()
        numba.set_num_threads(min(self.count, numba.config.NUMBA_NUM_THREADS))
        self.blas = threadpool_limits(limits=self.count, user_api="blas")

    def __exit__(self, *exc: object) -> None:
        import numba

        self.blas.restore_original_limits()
        numba.set_num_threads(self.numba_before)


class _sigint:
    """Within the block, Ctrl-C (SIGINT) on a rank only marks it in the next reduction, and every rank stops after
    that step (``TrainingInterrupted``); a second Ctrl-C ends the job at once. Main thread only."""

    def __init__(self, reducer: _Reducer) -> None:
        self.reducer, self.previous = reducer, None

    def __enter__(self) -> None:
        import signal

        if threading.current_thread() is threading.main_thread():
            def handler(signum: int, frame: Any) -> None:
                if self.reducer.interrupt:
                    raise KeyboardInterrupt
                self.reducer.interrupt = 1.0

            self.previous = signal.signal(signal.SIGINT, handler)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            import signal

            signal.signal(signal.SIGINT, self.previous)


# ------------------------------------------------------------------------------------------------ training
def train_sharded(
    net: ShallowReLU | NetworkSpec,
    X: Any,
    y: Any,
    *,
    lr: float,
    steps: int,
    method: str = "auto",
    comm: Any = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    timeout: float | None = None,
    threads: int | None = None,
    callback: Callable[[int, ShallowReLU, History], None] | None = None,
    progress: bool = False,
) -> ShardedResult:
    r"""Full-batch GD of :func:`sparsentk.train`, with the neurons split among the ranks of ``comm``.

    .. math::

        \theta(t+1) = \theta(t) - \eta \nabla_\theta \tfrac12 \sum_i (f(x_i; \theta(t)) - y_i)^2, \qquad
        f(x_i) = \frac{1}{\sqrt m}\sum_{k} \underbrace{\textstyle\sum_{r \in R_k} a_r\,\mathrm{relu}(w_r\cdot x_i
        - b_r)}_{\text{rank } k\text{'s partial output}}

    Each rank owns the contiguous neurons ``neuron_range(width, size, rank)``; a step communicates once (an
    all-reduce of the partial outputs, active counts and statistics). The iterates equal :func:`sparsentk.train`'s
    up to rounding (the order of the sums over neurons), and the same rank count gives the same numbers bitwise.
    Run every rank with the same arguments (e.g. ``mpiexec -n K python script.py``).

    Parameters
    ----------
    net : ShallowReLU or NetworkSpec
        A network held by every rank (each trains its rows; at the end the trained ``W`` and ``b`` are gathered
        back into it on every rank, so the call replaces ``train(net, ...)``), or a :class:`NetworkSpec`, of which
        each rank draws only its own neurons (for widths beyond one process's memory; assemble the result with
        :meth:`ShardedResult.gather` if it fits).
    X, y, lr, steps, method, progress
        As for :func:`sparsentk.train` (``method`` ``"dense"``, ``"sparse"``, ``"kernel"`` or ``"auto"``, which
        rank 0 resolves for the whole network as :func:`sparsentk.train` does; ``progress`` is shown by rank 0).
        ``"kernel"`` holds the n × n arrays G + 1 and C (12 n² bytes) on every rank.
    comm : mpi4py.MPI.Comm, optional
        Default ``MPI.COMM_WORLD``.
    checkpoint : path, optional
        A folder all ranks can write (shared file system). Every ``checkpoint_every`` steps, and after the last,
        each rank writes its rows atomically, and once every rank has (learnt from the next step's all-reduce)
        rank 0 writes the commit marker ``step-T.json`` holding the history. The two newest checkpoints are kept.
    checkpoint_every : int
        Steps between checkpoints (0: only after the last step, when ``checkpoint`` is given).
    resume : bool
        Continue from the newest committed checkpoint in ``checkpoint`` (at any rank count: each rank reads its
        rows from the files that hold them); start from step 0 if there is none. ``net`` must be the same
        initial network, and ``X``, ``y``, ``lr`` (up to ``LR_TOLERANCE``, then the checkpoint's is used) and
        ``method`` the same (checked).
    timeout : float, optional
        End the whole job (exit status 3, a message on stderr) when a rank waits more than this many seconds
        between two iterates (a hung or very slow rank).
    threads : int, optional
        numba and BLAS threads of each rank; default: the node's cores divided by the ranks on the node.
    callback : callable, optional
        ``callback(t, local_net, history)`` after each iterate, on every rank; ``local_net`` holds this rank's
        neurons only.

    Returns
    -------
    ShardedResult

    Raises
    ------
    TrainingDiverged, TrainingInterrupted
        On every rank alike, when the loss diverges (as :func:`sparsentk.train`) or after Ctrl-C on any rank
        (every rank stops after the same step). The error's ``result`` (a :class:`ShardedResult`) holds the rows
        of the last good iterate.

    Notes
    -----
    A failure on one rank (an exception other than ``TrainingDiverged`` or a ``ValueError`` every rank raises
    alike) prints a message and ends the job through ``MPI_Abort``; a rank that dies ends the job through
    ``mpiexec``. Rerun with ``resume=True`` to finish.
    """
    comm = MPI.COMM_WORLD if comm is None else comm
    if not isinstance(net, ShallowReLU | NetworkSpec):
        raise TypeError(f"net: expected a sparsentk.ShallowReLU or a NetworkSpec, got {type(net).__name__}")
    X = check_matrix(X, "X", dim=net.dim, dtype=net.dtype)
    y = check_vector(y, "y", length=X.shape[0], dtype=net.dtype)
    lr = check_float(lr, "lr", positive=True)
    steps = check_int(steps, "steps", minimum=0)
    check_choice(method, "method", METHODS)
    checkpoint_every = check_int(checkpoint_every, "checkpoint_every", minimum=0)
    if timeout is not None:
        timeout = check_float(timeout, "timeout", positive=True)
    if threads is not None:
        threads = check_int(threads, "threads", minimum=1)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable, got {type(callback).__name__}")
    if (resume or checkpoint_every) and checkpoint is None:
        raise ValueError("checkpoint: a folder is needed for resume and checkpoint_every")

    rank, size = comm.rank, comm.size
    if net.width < size:
        raise ValueError(f"width: expected at least one neuron per rank ({size} ranks), got {net.width}")
    lo, hi = neuron_range(net.width, size, rank)
    if isinstance(net, NetworkSpec):
        local = net.rows(lo, hi)
    else:
        local = _local_network(net.bias, net.init, net.seed, net.W[lo:hi].copy(), net.b[lo:hi].copy(),
                               net.a[lo:hi].copy())
    # "auto" decides on the whole network, as train would (the kernel method's n × n arrays are then held per rank)
    method = comm.bcast(_resolve_method(method, net, X, y, lr) if rank == 0 else None, root=0)
    reducer = _Reducer(comm)
    shard = _Shard(width=net.width, reduce=reducer)

    checkpoints = start = None
    if checkpoint is not None:
        folder = Path(checkpoint)
        checkpoints = _Checkpoints(folder, checkpoint_every or steps + 1, steps, comm, lo, hi, net.width,
                                   _fingerprint(net, X, y, method), reducer, lr)
        # set-up errors (a missing or foreign checkpoint) are agreed on before any step, so every rank raises
        error = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if resume:
                start = checkpoints.load()
                if start is not None:
                    lr = start[0].lr
            elif _committed(folder):
                raise ValueError(f"checkpoint: {str(folder)!r} holds checkpoints of an earlier run; pass resume=True "
                                 "to continue it, or another folder")
        except (OSError, ValueError, KeyError) as err:
            error = err
        failed = comm.allgather(None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error if isinstance(error, ValueError) else ValueError(f"checkpoint: {error}") from error
        if any(failed):
            first = next(k for k, msg in enumerate(failed) if msg)
            raise ValueError(f"checkpoint: rank {first} failed to set up: {failed[first]}")

    watchdog = None if timeout is None else _Watchdog(comm, timeout)

    def on_iterate(t: int, local_net: ShallowReLU, history: History) -> None:
        if watchdog is not None:
            watchdog.pet(t)
        if checkpoints is not None:
            checkpoints.on_iterate(t, local_net, history)
        if callback is not None:
            callback(t, local_net, history)
        if reducer.interrupted:  # Ctrl-C on some rank, known to all from this step's reduction
            raise TrainingInterrupted(f"training interrupted after step {t} of {steps}", history._truncate(t + 1))

    def needs_weights(t: int) -> bool:  # a lazy engine ("kernel") brings its rows up to date only for these
        return callback is not None or (checkpoints is not None and checkpoints.writes(t))

    on_iterate.needs_weights = needs_weights  # type: ignore[attr-defined]

    def result() -> ShardedResult:
        return ShardedResult(history=history, W=local.W, b=local.b, a=local.a, lo=lo, hi=hi, width=net.width,
                             bias=net.bias, init=net.init, seed=net.seed, comm=comm)

    try:
        with _threads(threads or threads_per_rank(comm)), _sigint(reducer):
            history = _run(local, X, y, lr=lr, steps=steps, method=method, callback=on_iterate,
                           progress=progress and rank == 0, shard=shard, resume=start)
            if checkpoints is not None:
                checkpoints.finish(history)
    except (TrainingDiverged, TrainingInterrupted) as err:
        # raised by every rank alike (decided from the reduced buffer); err.result holds the rows reached
        history = err.history
        err.result = result()
        if isinstance(net, ShallowReLU):  # as train: the network keeps the last good iterate
            full = err.result.gather(root=None)
            np.copyto(net.W, full.W)
            np.copyto(net.b, full.b)
        raise
    except ValueError:
        raise  # the set-up checks after a reduction (a non-finite initial loss, a foreign checkpoint)
    except BaseException as err:
        if size > 1:
            _abort(comm, f"{type(err).__name__}: {err}")
        raise
    finally:
        if watchdog is not None:
            watchdog.close()

    done = result()
    if isinstance(net, ShallowReLU):
        full = done.gather(root=None)
        np.copyto(net.W, full.W)
        np.copyto(net.b, full.b)
    return done


def empirical_ntk_sharded(net: ShallowReLU | NetworkSpec, X: Any, *, comm: Any = None) -> np.ndarray:
    r"""The finite network's NTK (as :func:`sparsentk.empirical_ntk`), each rank contributing its neurons:

    .. math::

        H_{ij} = (x_i\cdot x_j + 1)\,\frac1m \sum_k \sum_{r\in R_k} 1[w_r\cdot x_i \ge b_r]\,1[w_r\cdot x_j \ge b_r],

    summed by one all-reduce of an n × n array (collective; every rank gets H)."""
    from sparsentk.kernels import empirical_ntk

    comm = MPI.COMM_WORLD if comm is None else comm
    lo, hi = neuron_range(net.width, comm.size, comm.rank)
    local = net.rows(lo, hi) if isinstance(net, NetworkSpec) else _local_network(
        net.bias, net.init, net.seed, net.W[lo:hi], net.b[lo:hi], net.a[lo:hi])
    X = check_matrix(X, "X", dim=net.dim, dtype=np.float64)
    H = empirical_ntk(local, X) * ((hi - lo) / net.width) if hi > lo else np.zeros((len(X), len(X)))
    comm.Allreduce(MPI.IN_PLACE, H, op=MPI.SUM)
    return H
