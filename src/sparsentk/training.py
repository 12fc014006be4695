r"""Full-batch gradient descent on the first layer and biases (P1, paper-notes §1).

.. math::

    W(t+1) = W(t) - \eta\, \nabla_W L(W(t), b(t)), \qquad b(t+1) = b(t) - \eta\, \nabla_b L(W(t), b(t)),
    \qquad L = \tfrac12 \sum_i (f(x_i) - y_i)^2 .

Two methods give the same iterates up to rounding: ``"dense"`` (the readable reference: BLAS products over neuron
blocks) and ``"sparse"`` (exact sparse GD whose cost follows the active neuron–input pairs, in
``sparsentk._sparse``). Both record the same :class:`History`.
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
from sparsentk._validate import check_choice, check_float, check_int, check_matrix, check_vector
from sparsentk.network import CHUNK, ShallowReLU

METHODS = ("dense", "sparse", "auto")

#: Per-iterate fields of :class:`History` (length ``steps + 1``).
ITERATE_FIELDS = ("loss", "active_mean", "active_max", "flips", "movement_w", "movement_b")

#: ``method="auto"`` uses the sparse method when the expected active fraction is at most this. Over the first steps
#: the sparse method is faster at every bias of the sweep in BENCHMARKS.md (width 2^16, n = 2048: 4.6× at fraction
#: 0.067, 2.6× at 0.16, 1.7× at 0.5), but its lists take 5 bytes per listed pair, about five times the active pairs
#: after the first examination, against 1/8 byte per pair for dense GD's bit-packed patterns: above about 0.1 they
#: approach the size of a float32 n × width array, which the sparse method exists to avoid.
AUTO_SPARSE_FRACTION = 0.1


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
        in the fused update-and-forward loop (``loop_seconds``) and in examinations (``exam_seconds``).
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
    """Raised when the loss becomes non-finite; ``history`` holds every iterate up to the last finite one and the
    network keeps the parameters of that iterate."""

    def __init__(self, message: str, history: History) -> None:
        super().__init__(message)
        self.history = history


class _Engine(Protocol):
    """What a training method provides to :func:`train` (private protocol).

    ``evaluate`` computes the forward pass at the current parameters and returns the per-iterate fields (and any
    extra counters); ``step`` applies one GD step using the residual of the last ``evaluate``; ``revert`` undoes
    the last step (used when the loss at the new iterate is not finite); ``close`` leaves the final parameters in
    the network's own arrays.
    """

    def evaluate(self) -> dict[str, float]: ...

    def step(self, lr: float) -> None: ...

    def revert(self) -> None: ...

    def close(self) -> None: ...


class _DenseEngine:
    """Dense GD over blocks of ``CHUNK`` neurons: no n × width array is ever formed.

    The activation pattern of each block is kept bit-packed (n × width / 8 bytes) so the backward pass needs no
    second product and flips are counted with XOR and popcount against the packed initial pattern.
    """

    def __init__(self, net: ShallowReLU, X: np.ndarray, y: np.ndarray) -> None:
        self.net, self.X, self.y = net, X, y
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
        f /= math.sqrt(net.width)
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
        scale = (-lr / math.sqrt(net.width)) * net.a
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


def expected_active_fraction(bias: float, X: np.ndarray) -> float:
    r"""Expected fraction of active pairs at initialization, :math:`\frac1n\sum_i \bar\Phi(B / \|x_i\|)`."""
    norms = np.linalg.norm(X, axis=1)
    with np.errstate(divide="ignore"):
        thresholds = np.where(norms > 0, bias / np.where(norms > 0, norms, 1.0), np.inf if bias > 0 else -np.inf)
    return float(np.mean(ndtr(-thresholds)))


def _resolve_method(method: str, net: ShallowReLU, X: np.ndarray) -> str:
    if method != "auto":
        return method
    return "sparse" if expected_active_fraction(net.bias, X) <= AUTO_SPARSE_FRACTION else "dense"


def _make_engine(method: str, net: ShallowReLU, X: np.ndarray, y: np.ndarray) -> _Engine:
    if method == "dense":
        return _DenseEngine(net, X, y)
    from sparsentk._sparse import SparseEngine

    return SparseEngine(net, X, y)


def train(
    net: ShallowReLU,
    X: Any,
    y: Any,
    *,
    lr: float,
    steps: int,
    method: str = "dense",
    callback: Callable[[int, ShallowReLU, History], None] | None = None,
    progress: bool = False,
) -> History:
    r"""Full-batch gradient descent on ``W`` and ``b`` of ``net`` (updated in place).

    .. math::

        \theta(t+1) = \theta(t) - \eta \nabla_\theta \tfrac12 \sum_i (f(x_i; \theta(t)) - y_i)^2,
        \qquad \theta = (W, b).

    Parameters
    ----------
    net : ShallowReLU
        The network; its ``W`` and ``b`` are overwritten with the final iterate.
    X : array, shape (n, dim)
        Inputs (P1 assumes unit rows; any finite rows are accepted).
    y : array, shape (n,)
        Targets.
    lr : float
        Step size :math:`\eta > 0`.
    steps : int
        Number of GD steps :math:`T \ge 0`; the history holds iterates :math:`0, \dots, T`.
    method : {"dense", "sparse", "auto"}
        ``"sparse"`` is exact sparse GD whose cost follows the active pairs; ``"auto"`` picks it when the expected
        active fraction :math:`\frac1n\sum_i\bar\Phi(B/\|x_i\|)` is at most ``AUTO_SPARSE_FRACTION``.
    callback : callable, optional
        Called as ``callback(t, net, history)`` after iterate ``t`` is recorded (``history`` entries beyond ``t``
        are not yet filled).
    progress : bool
        Show a progress bar with the current loss.

    Returns
    -------
    History

    Raises
    ------
    TrainingDiverged
        When the loss becomes non-finite; it carries the history up to the last finite iterate, and ``net`` keeps
        the parameters of that iterate.
    """
    if not isinstance(net, ShallowReLU):
        raise TypeError(f"net: expected a sparsentk.ShallowReLU, got {type(net).__name__}")
    X = check_matrix(X, "X", dim=net.dim, dtype=net.dtype)
    y = check_vector(y, "y", length=X.shape[0], dtype=net.dtype)
    lr = check_float(lr, "lr", positive=True)
    steps = check_int(steps, "steps", minimum=0)
    method = _resolve_method(check_choice(method, "method", METHODS), net, X)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable, got {type(callback).__name__}")

    history = History._allocate(steps, method, lr)
    start = time.perf_counter()
    engine = _make_engine(method, net, X, y)
    values = engine.evaluate()
    history.setup_seconds = time.perf_counter() - start
    if not math.isfinite(values["loss"]):
        raise ValueError(f"net: the loss at initialization is not finite ({values['loss']}); check X and y scales")
    history._record(0, values)
    if callback is not None:
        callback(0, net, history)

    try:
        with _progress_bar(progress, steps, method) as advance:
            for t in range(1, steps + 1):
                tick = time.perf_counter()
                engine.step(lr)
                values = engine.evaluate()
                history.seconds[t - 1] = time.perf_counter() - tick
                if not math.isfinite(values["loss"]):
                    engine.revert()
                    last = history.loss[t - 1]
                    raise TrainingDiverged(
                        f"training diverged at step {t}: loss = {values['loss']} (last finite loss {last:.6g} at "
                        f"step {t - 1}); lr={lr} is too large. The network keeps its step-{t - 1} parameters and the "
                        "error's `history` holds every finite iterate.",
                        history._truncate(t),
                    )
                history._record(t, values)
                if callback is not None:
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
