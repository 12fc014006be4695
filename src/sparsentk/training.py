r"""Full-batch gradient descent on the first layer and biases (P1, paper-notes §1).

.. math::

    W(t+1) = W(t) - \eta\, \nabla_W L(W(t), b(t)), \qquad b(t+1) = b(t) - \eta\, \nabla_b L(W(t), b(t)),
    \qquad L = \tfrac12 \sum_i (f(x_i) - y_i)^2 .

Three methods give the same iterates up to rounding: ``"dense"`` (the readable reference: BLAS products over neuron
blocks), ``"sparse"`` (exact sparse GD whose cost follows the active neuron–input pairs, in
``sparsentk._sparse``) and ``"kernel"`` (exact GD in function space: one n × n product per step plus the neurons
whose certificate expires, in ``sparsentk._function_space``). All record the same :class:`History` fields.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy.special import ndtr

from sparsentk._io import atomic_write_text
from sparsentk._memory import require_memory
from sparsentk._validate import check_choice, check_float, check_int, check_matrix, check_vector
from sparsentk.network import CHUNK, ShallowReLU

METHODS = ("dense", "sparse", "kernel", "auto")

#: Per-iterate fields of :class:`History` (length ``steps + 1``).
ITERATE_FIELDS = ("loss", "active_mean", "active_max", "flips", "movement_w", "movement_b")

#: ``method="auto"`` uses the sparse method when the expected active fraction is at most this. Over the first steps
#: the sparse method is faster at every bias of the sweep in BENCHMARKS.md (width 2^16, n = 2048: 4.6× at fraction
#: 0.067, 2.6× at 0.16, 1.7× at 0.5), but its lists take 5 bytes per listed pair, about five times the active pairs
#: after the first examination, against 1/8 byte per pair for dense GD's bit-packed patterns: above about 0.1 they
#: approach the size of a float32 n × width array, which the sparse method exists to avoid.
AUTO_SPARSE_FRACTION = 0.1

#: :func:`train` raises :class:`TrainingDiverged` when the loss exceeds this many times its reference
#: :math:`\max(L(0), \tfrac12\|y\|^2)` (the loss of the zero function). Gradient descent that converges never
#: gets there: a run whose loss grew a million-fold has left the regime the analysis describes (P1, Theorem 3.1
#: needs :math:`\eta \lesssim 1/\lambda_{\max}`), even when the loss later settles because every neuron died.
DIVERGE_FACTOR = 1e6


@dataclass
class History:
    r"""What happened during training, one entry per iterate :math:`t = 0, \dots, T`.

    Attributes
    ----------
    loss : ndarray
        :math:`L(t) = \tfrac12 \sum_i (f_t(x_i) - y_i)^2`.
    active_mean, active_max : ndarray
        Mean and maximum over inputs of :math:`|S_{on}(i, t)| = |\{r : w_r(t)\cdot x_i \ge b_r(t)\}|`.
    flips : ndarray of int
        Number of pairs :math:`(r, i)` whose activation at :math:`t` differs from :math:`t = 0`.
    movement_w, movement_b : ndarray
        :math:`R_w(t) = \max_r \|w_r(t) - w_r(0)\|` and :math:`R_b(t) = \max_r |b_r(t) - b_r(0)|`.
    seconds : ndarray
        Wall-clock seconds of each step (length ``T``): the update plus the forward pass at the new iterate.
    setup_seconds : float
        Seconds spent before the first step (initial forward pass and the method's set-up).
    stats : dict of ndarray
        Method-specific counters per iterate. The sparse method reports ``active_pairs``, ``candidates`` (pairs
        whose pre-activations a step computes), ``listed`` (pairs kept by the last examinations), ``computed``
        (pre-activations computed by the step), ``refreshed`` (neurons whose candidates were rebuilt from their
        listed inputs), ``reexamined`` (neurons examined against every input), and the seconds of the step spent
        in the fused update-and-forward loop (``loop_seconds``) and in examinations (``exam_seconds``). The
        kernel method reports ``due`` (neurons whose certificate deadline was reached), ``renewed_from_E`` and
        ``renewed`` (of those, certified again by the bounds from the residuals alone or with the pairs near the
        threshold computed exactly; ``exact_pairs`` counts those pairs), ``updated`` (brought up to date),
        ``reexamined``, ``crossings`` (pairs that changed activation at the step), ``drift`` (largest change of
        f when rebuilt from the weights, every ``RESYNC_EVERY`` steps; NaN elsewhere), ``fallback`` (1 once it
        handed over to the sparse method, whose counters follow) and seconds per stage (``product_seconds``,
        ``check_seconds``, ``crossing_seconds``, ``exam_seconds``, ``evaluate_seconds``, ``resync_seconds``).
    """

    method: str
    lr: float
    loss: np.ndarray
    active_mean: np.ndarray
    active_max: np.ndarray
    flips: np.ndarray
    movement_w: np.ndarray
    movement_b: np.ndarray
    seconds: np.ndarray
    setup_seconds: float = 0.0
    stats: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def _allocate(cls, steps: int, method: str, lr: float) -> History:
        nan = np.full(steps + 1, np.nan)
        return cls(
            method=method,
            lr=lr,
            loss=nan.copy(),
            active_mean=nan.copy(),
            active_max=nan.copy(),
            flips=np.zeros(steps + 1, dtype=np.int64),
            movement_w=nan.copy(),
            movement_b=nan.copy(),
            seconds=np.full(steps, np.nan),
        )

    def _record(self, t: int, values: dict[str, float]) -> None:
        for name in ITERATE_FIELDS:
            getattr(self, name)[t] = values[name]
        for name, value in values.items():
            if name not in ITERATE_FIELDS:
                self.stats.setdefault(name, np.full(len(self.loss), np.nan))[t] = value

    def _truncate(self, iterates: int) -> History:
        """A copy holding iterates ``0 .. iterates - 1`` only."""
        return History(
            method=self.method,
            lr=self.lr,
            **{name: getattr(self, name)[:iterates].copy() for name in ITERATE_FIELDS},
            seconds=self.seconds[: max(iterates - 1, 0)].copy(),
            setup_seconds=self.setup_seconds,
            stats={k: v[:iterates].copy() for k, v in self.stats.items()},
        )

    @property
    def steps(self) -> int:
        """Number of GD steps recorded."""
        return len(self.loss) - 1

    def to_dict(self) -> dict[str, Any]:
        """Plain Python lists and numbers (JSON-ready, no DataFrame needed)."""
        out: dict[str, Any] = {"method": self.method, "lr": self.lr, "setup_seconds": self.setup_seconds}
        for name in (*ITERATE_FIELDS, "seconds"):
            out[name] = getattr(self, name).tolist()
        out["stats"] = {k: v.tolist() for k, v in self.stats.items()}
        return out

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write one row per iterate (``step``, the per-iterate fields, ``seconds`` of the step that led there,
        and the method's ``stats``), atomically."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        extra = sorted(self.stats)
        writer.writerow(["step", *ITERATE_FIELDS, "seconds", *extra])
        for t in range(len(self.loss)):
            row: list[Any] = [t]
            row += [repr(getattr(self, name)[t].item()) for name in ITERATE_FIELDS]
            row.append(repr(self.seconds[t - 1].item()) if t > 0 else "")
            row += [repr(self.stats[k][t].item()) for k in extra]
            writer.writerow(row)
        atomic_write_text(path, buf.getvalue())


class TrainingDiverged(FloatingPointError):
    """Raised by :func:`train` when the loss becomes non-finite, grows past ``diverge_factor`` times its reference,
    or every active pair is lost while the loss is non-zero; ``history`` holds every iterate up to the last good
    one and the network keeps the parameters of that iterate."""

    def __init__(self, message: str, history: History) -> None:
        super().__init__(message)
        self.history = history


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by :func:`train` after Ctrl-C (SIGINT): the step under way is finished first, so ``history`` holds
    every iterate up to the last finished step and the network holds the parameters of that iterate. A second
    Ctrl-C interrupts at once (plain ``KeyboardInterrupt``)."""

    def __init__(self, message: str, history: History) -> None:
        super().__init__(message)
        self.history = history


class _Engine(Protocol):
    """What a training method provides to :func:`train` (private protocol).

    ``evaluate`` computes the forward pass at the current parameters and returns the per-iterate fields (and any
    extra counters); ``step`` applies one GD step using the residual of the last ``evaluate``; ``revert`` undoes
    the last step (used when the loss at the new iterate is not finite); ``close`` leaves the final parameters in
    the network's own arrays; ``restart`` continues from given parameters (a resumed checkpoint; the next
    ``evaluate`` is at them).

    Sharding (``sparsentk.distributed``): an engine built with a :class:`_Shard` holds only its process's neurons.
    Its ``evaluate`` sums its partial outputs, counts and statistics into one buffer and passes it to
    ``shard.reduce`` (one all-reduce) before it forms the residual, so every process gets the same residual and
    the same values, and every decision of :func:`train` (revert, divergence, stop) agrees. ``step`` needs no
    communication. A method joins by doing the same in its ``evaluate`` (see :meth:`_Shard.combine`).
    """

    def evaluate(self) -> dict[str, float]: ...

    def step(self, lr: float) -> None: ...

    def revert(self) -> None: ...

    def close(self) -> None: ...

    def restart(self, W: np.ndarray, b: np.ndarray) -> None: ...


@dataclass(frozen=True)
class _Shard:
    """This process's part of a network whose neurons are split among processes (``sparsentk.distributed``).

    ``width`` is the whole network's width (the :math:`m^{-1/2}` of the output). ``reduce(buffer, maxima)``
    combines a float64 buffer across the processes, summing every entry but the last ``maxima`` and taking the
    maximum of those, and returns the result, the same on every process.
    """

    width: int
    reduce: Callable[[np.ndarray, int], np.ndarray]

    def combine(
        self, vectors: list[np.ndarray], sums: list[float], maxima: list[float]
    ) -> tuple[list[np.ndarray], list[float], list[float]]:
        """Sum ``vectors`` (n-vectors) and ``sums`` over the processes and take the maximum of ``maxima``, in one
        reduction of one buffer (integer counts stay exact below 2^53)."""
        sizes = [len(v) for v in vectors]
        buffer = np.concatenate([*(np.asarray(v, dtype=np.float64) for v in vectors),
                                 np.asarray(sums, dtype=np.float64), np.asarray(maxima, dtype=np.float64)])
        out = self.reduce(buffer, len(maxima))
        cuts = np.cumsum([0, *sizes])
        tail = out[cuts[-1] :]
        return ([out[cuts[k] : cuts[k + 1]] for k in range(len(sizes))],
                tail[: len(sums)].tolist(), tail[len(sums) :].tolist())


class _DenseEngine:
    """Dense GD over blocks of ``CHUNK`` neurons: no n × width array is ever formed.

    The activation pattern of each block is kept bit-packed (n × width / 8 bytes) so the backward pass needs no
    second product and flips are counted with XOR and popcount against the packed initial pattern.
    """

    def __init__(self, net: ShallowReLU, X: np.ndarray, y: np.ndarray, shard: _Shard | None = None) -> None:
        self.net, self.X, self.y = net, X, y
        self.shard = shard
        self.scale_width = net.width if shard is None else shard.width  # the m of m^{-1/2}
        self.W0, self.b0 = net.W.copy(), net.b.copy()
        self.W_prev, self.b_prev = np.empty_like(net.W), np.empty_like(net.b)
        self.blocks = [(lo, min(lo + CHUNK, net.width)) for lo in range(0, net.width, CHUNK)]
        self.bits: list[np.ndarray] = []
        self.bits0: list[np.ndarray] | None = None
        self.residual = np.zeros(X.shape[0], dtype=net.dtype)

    @np.errstate(over="ignore", invalid="ignore")
    def evaluate(self) -> dict[str, float]:
        net, X = self.net, self.X
        n = X.shape[0]
        f = np.zeros(n, dtype=np.float64)
        counts = np.zeros(n, dtype=np.int64)
        flips = 0
        move_w = move_b = 0.0
        bits = []
        for k, (lo, hi) in enumerate(self.blocks):
            z = X @ net.W[lo:hi].T
            z -= net.b[lo:hi]
            packed = np.packbits(z >= 0, axis=1)
            np.maximum(z, 0, out=z)
            f += z @ net.a[lo:hi]
            counts += np.bitwise_count(packed).sum(axis=1, dtype=np.int64)
            bits.append(packed)
            if self.bits0 is not None:
                flips += int(np.bitwise_count(packed ^ self.bits0[k]).sum())
            dw = net.W[lo:hi] - self.W0[lo:hi]
            move_w = max(move_w, float(np.sqrt(np.einsum("ij,ij->i", dw, dw).max())))
            move_b = max(move_b, float(np.abs(net.b[lo:hi] - self.b0[lo:hi]).max()))
        if self.bits0 is None:
            self.bits0 = bits
        self.bits = bits
        if self.shard is not None:  # the one communication of a sharded step
            (f, counts), (flips,), (move_w, move_b) = self.shard.combine([f, counts], [flips], [move_w, move_b])
            counts, flips = counts.astype(np.int64), int(flips)
        f /= math.sqrt(self.scale_width)
        residual = f - self.y
        self.residual = residual.astype(net.dtype)
        return {
            "loss": 0.5 * float(residual @ residual),
            "active_mean": float(counts.mean()),
            "active_max": float(counts.max()),
            "flips": flips,
            "movement_w": move_w,
            "movement_b": move_b,
        }

    @np.errstate(over="ignore", invalid="ignore")
    def step(self, lr: float) -> None:
        net, X = self.net, self.X
        np.copyto(self.W_prev, net.W)
        np.copyto(self.b_prev, net.b)
        scale = (-lr / math.sqrt(self.scale_width)) * net.a
        # [r ∘ X, r]: one product with the activation block gives Σ_i r_i 1[..] x_i and Σ_i r_i 1[..] together
        rX = np.empty((X.shape[0], X.shape[1] + 1), dtype=net.dtype)
        np.multiply(X, self.residual[:, None], out=rX[:, :-1])
        rX[:, -1] = self.residual
        for k, (lo, hi) in enumerate(self.blocks):
            mask = np.unpackbits(self.bits[k], axis=1, count=hi - lo).astype(net.dtype)
            g = mask.T @ rX
            g *= scale[lo:hi, None]
            net.W[lo:hi] += g[:, :-1]
            net.b[lo:hi] -= g[:, -1]

    def revert(self) -> None:
        np.copyto(self.net.W, self.W_prev)
        np.copyto(self.net.b, self.b_prev)

    def close(self) -> None:
        pass

    def restart(self, W: np.ndarray, b: np.ndarray) -> None:
        np.copyto(self.net.W, W)
        np.copyto(self.net.b, b)


def expected_active_fraction(bias: float, X: np.ndarray) -> float:
    r"""Expected fraction of active pairs at initialization, :math:`\frac1n\sum_i \bar\Phi(B / \|x_i\|)`."""
    norms = np.linalg.norm(X, axis=1)
    with np.errstate(divide="ignore"):
        thresholds = np.where(norms > 0, bias / np.where(norms > 0, norms, 1.0), np.inf if bias > 0 else -np.inf)
    return float(np.mean(ndtr(-thresholds)))


def _resolve_method(method: str, net: ShallowReLU, X: np.ndarray, y: np.ndarray | None = None,
                    lr: float | None = None) -> str:
    """``"auto"``: dense above ``AUTO_SPARSE_FRACTION``; else ``"kernel"`` when ``y`` and ``lr`` are given and
    ``sparsentk._function_space.prefers_kernel`` holds (a sharded run passes the whole network), else
    ``"sparse"``."""
    if method != "auto":
        return method
    fraction = expected_active_fraction(net.bias, X)
    if fraction > AUTO_SPARSE_FRACTION:
        return "dense"
    if y is None or lr is None:
        return "sparse"
    from sparsentk._function_space import due_fraction, prefers_kernel  # the rule between the sparse methods

    due = due_fraction(X, y, net.bias, net.width, lr)
    return "kernel" if prefers_kernel(X.shape[0], X.shape[1], net.width, fraction, due) else "sparse"


def _make_engine(method: str, net: ShallowReLU, X: np.ndarray, y: np.ndarray, shard: _Shard | None = None) -> _Engine:
    if not isinstance(net, ShallowReLU):  # other model families bring their own engine (TwoLayer)
        return net._gd_engine(X, y)
    if method == "dense":
        return _DenseEngine(net, X, y, shard)
    if method == "kernel":
        from sparsentk._function_space import KernelEngine

        return KernelEngine(net, X, y, shard)
    from sparsentk._sparse import SparseEngine

    return SparseEngine(net, X, y, shard)


def _divergence(values: dict[str, float], history: History, t: int, reference: float,
                factor: float | None) -> str | None:
    """Why iterate ``t`` (with ``values``) is a diverged one, or None. Three signs, checked for every method:
    a non-finite loss; a loss above ``factor`` times ``reference``; every active pair lost while the residual is
    non-zero (the gradient is then zero for good: GD can never move again)."""
    loss, last = values["loss"], history.loss[t - 1]
    where = f"(loss {last:.6g} at step {t - 1}" + (f", {history.loss[0]:.6g} at step 0)" if t > 1 else ")")
    if not math.isfinite(loss):
        return f"training diverged at step {t}: loss = {loss} {where}"
    if factor is not None and reference > 0 and loss > factor * reference:
        return (f"training diverged at step {t}: loss {loss:.6g} exceeds {factor:g} times its reference "
                f"{reference:.6g} (max of L(0) and ½‖y‖²) {where}")
    if values["active_mean"] == 0 and history.active_mean[t - 1] > 0 and loss > 0:
        return (f"training diverged at step {t}: every neuron-input pair became inactive while the loss is "
                f"{loss:.6g} > 0, so the gradient is zero from now on {where}")
    return None


class _deferred_sigint:
    """Within the block, Ctrl-C (SIGINT) only sets ``self.pending``; a second Ctrl-C raises at once. Active only in
    the main thread, when SIGINT has Python's default handler, and when ``enabled`` (otherwise a no-op). Sharded
    runs disable it: the processes would have to agree on the step at which to stop."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def __enter__(self) -> _deferred_sigint:
        import signal
        import threading

        self.pending, self.previous = False, None
        if self.enabled and threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            def handler(signum: int, frame: Any) -> None:
                if self.pending:
                    raise KeyboardInterrupt
                self.pending = True

            self.previous = signal.signal(signal.SIGINT, handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            import signal

            signal.signal(signal.SIGINT, self.previous)


def train(
    net: ShallowReLU,
    X: Any,
    y: Any,
    *,
    lr: float,
    steps: int,
    method: str = "auto",
    callback: Callable[[int, ShallowReLU, History], None] | None = None,
    progress: bool = False,
    diverge_factor: float | None = DIVERGE_FACTOR,
) -> History:
    r"""Full-batch gradient descent on ``W`` and ``b`` of ``net`` (updated in place).

    .. math::

        \theta(t+1) = \theta(t) - \eta \nabla_\theta \tfrac12 \sum_i (f(x_i; \theta(t)) - y_i)^2,
        \qquad \theta = (W, b).

    Parameters
    ----------
    net : ShallowReLU or TwoLayer
        The network; its ``W`` and ``b`` are overwritten with the final iterate. A :class:`~sparsentk.TwoLayer`
        trains its ``train``/``train_bias`` groups on :math:`\tfrac12\|F - Y\|_F^2` with ``y`` of shape (n,) or
        (n, out), method ``"dense"`` (its history's ``stats`` hold ``relative_loss``, ``movement_W``,
        ``movement_V`` and, at :func:`~sparsentk.two_layer.kernel_checkpoints`, ``kernel_change``).
    X : array, shape (n, dim)
        Inputs (P1 assumes unit rows; any finite rows are accepted).
    y : array, shape (n,)
        Targets.
    lr : float
        Step size :math:`\eta > 0`.
    steps : int
        Number of GD steps :math:`T \ge 0`; the history holds iterates :math:`0, \dots, T`.
    method : {"auto", "dense", "sparse", ...}
        ``"sparse"`` is exact sparse GD whose cost follows the active pairs; ``"auto"`` (the default) picks the
        fastest exact method: sparse when the expected active fraction :math:`\frac1n\sum_i\bar\Phi(B/\|x_i\|)`
        is at most ``AUTO_SPARSE_FRACTION``, and among sparse ones ``"kernel"`` (exact GD in function space,
        ``sparsentk._function_space``) when :func:`sparsentk._function_space.prefers_kernel` holds (wide networks,
        n × n arrays that fit). Every method gives the same iterates up to rounding.
    callback : callable, optional
        Called as ``callback(t, net, history)`` after iterate ``t`` is recorded (``history`` entries beyond ``t``
        are not yet filled).
    progress : bool
        Show a progress bar with the current loss.
    diverge_factor : float or None
        Raise :class:`TrainingDiverged` when the loss exceeds ``diverge_factor`` times
        :math:`\max(L(0), \tfrac12\|y\|^2)` (default ``DIVERGE_FACTOR`` = 1e6); ``None`` checks only for a
        non-finite loss and lost activity.

    Returns
    -------
    History

    Raises
    ------
    TrainingDiverged
        When the loss becomes non-finite, exceeds ``diverge_factor`` times its reference, or every active pair is
        lost while the loss is non-zero (GD is then stuck for good). It carries the history up to the last good
        iterate, and ``net`` keeps the parameters of that iterate.
    TrainingInterrupted
        On Ctrl-C (a ``KeyboardInterrupt``): the current step is finished; the error's ``history`` holds every
        finished iterate and ``net`` the parameters of the last one.
    """
    if not isinstance(net, ShallowReLU) and not hasattr(net, "_gd_setup"):
        raise TypeError(f"net: expected a sparsentk.ShallowReLU or TwoLayer, got {type(net).__name__}")
    lr = check_float(lr, "lr", positive=True)
    steps = check_int(steps, "steps", minimum=0)
    if isinstance(net, ShallowReLU):
        X = check_matrix(X, "X", dim=net.dim, dtype=net.dtype)
        y = check_vector(y, "y", length=X.shape[0], dtype=net.dtype)
        method = _resolve_method(check_choice(method, "method", METHODS), net, X, y, lr)
    else:  # TwoLayer (sparsentk.two_layer): validates its own X, y (n, out) and method
        X, y, method = net._gd_setup(X, y, method, steps)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable, got {type(callback).__name__}")
    if diverge_factor is not None:
        diverge_factor = check_float(diverge_factor, "diverge_factor", minimum=1.0)
    require_memory((steps + 1) * 8 * 24, "steps", f"the history of {steps} steps")
    return _run(net, X, y, lr=lr, steps=steps, method=method, callback=callback, progress=progress,
                diverge_factor=diverge_factor)


def _run(
    net: ShallowReLU,
    X: np.ndarray,
    y: np.ndarray,
    *,
    lr: float,
    steps: int,
    method: str,
    callback: Callable[[int, ShallowReLU, History], None] | None = None,
    progress: bool = False,
    shard: _Shard | None = None,
    resume: tuple[History, np.ndarray, np.ndarray] | None = None,
    diverge_factor: float | None = DIVERGE_FACTOR,
) -> History:
    """The GD loop of :func:`train` on validated arguments; ``sparsentk.distributed`` runs it on each process's
    neurons with a ``shard``. ``resume = (done, W, b)`` continues after the iterates of ``done`` from the
    parameters ``W``, ``b`` of its last iterate (``net`` holds the initial parameters)."""
    history = History._allocate(steps, method, lr)
    start = time.perf_counter()
    engine = _make_engine(method, net, X, y, shard)
    values = engine.evaluate()
    if not math.isfinite(values["loss"]):
        raise ValueError(f"net: the loss at initialization is not finite ({values['loss']}); check X and y scales")
    first = 1
    if resume is None:
        history._record(0, values)
    else:
        done, W, b = resume
        first = done.steps + 1
        engine.restart(W, b)
        loss = engine.evaluate()["loss"]
        if not math.isclose(loss, done.loss[-1], rel_tol=1e-9, abs_tol=1e-300):
            raise ValueError(f"resume: the loss recomputed at step {done.steps} ({loss!r}) is not the checkpoint's "
                             f"({done.loss[-1]!r}); the data, network or method differ from the run that wrote it")
        for name in (*ITERATE_FIELDS, "seconds"):
            getattr(history, name)[: len(getattr(done, name))] = getattr(done, name)
        for name, column in done.stats.items():
            history.stats.setdefault(name, np.full(steps + 1, np.nan))[:first] = column[:first]
    history.setup_seconds = time.perf_counter() - start
    if callback is not None:
        callback(first - 1, net, history)

    reference = max(float(history.loss[0]), 0.5 * float(np.vdot(y, y.astype(np.float64))))  # y may be (n, out)
    try:
        with _progress_bar(progress, steps, method) as advance, _deferred_sigint(shard is None) as sigint:
            for t in range(first, steps + 1):
                if sigint.pending:
                    raise TrainingInterrupted(f"training interrupted after step {t - 1} of {steps}",
                                              history._truncate(t))
                tick = time.perf_counter()
                engine.step(lr)
                values = engine.evaluate()
                history.seconds[t - 1] = time.perf_counter() - tick
                problem = _divergence(values, history, t, reference, diverge_factor)
                if problem is not None:
                    engine.revert()
                    raise TrainingDiverged(
                        f"{problem}; lr={lr:g} is too large. The network keeps its step-{t - 1} parameters and "
                        "the error's `history` holds every iterate up to it.",
                        history._truncate(t),
                    )
                history._record(t, values)
                if callback is not None:
                    # a lazy engine brings the weights up to date for the callback (unless it says it needs none)
                    if hasattr(engine, "sync") and getattr(callback, "needs_weights", lambda t: True)(t):
                        engine.sync()
                    callback(t, net, history)
                advance(values["loss"])
    finally:
        engine.close()
    return history


class _progress_bar:
    """A rich progress bar over GD steps (a no-op when disabled)."""

    def __init__(self, enabled: bool, steps: int, method: str) -> None:
        self.enabled = enabled and steps > 0
        self.steps, self.method = steps, method

    def __enter__(self) -> Callable[[float], None]:
        if not self.enabled:
            return lambda loss: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn(f"GD ({self.method})"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeRemainingColumn(),
            transient=False,
        )
        self.bar.__enter__()
        task = self.bar.add_task("train", total=self.steps, loss="-")
        return lambda loss: self.bar.update(task, advance=1, loss=f"{loss:.4g}")

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)
