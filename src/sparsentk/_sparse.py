r"""Exact sparse gradient descent: the cost of a step follows the active neuron–input pairs, not n × width.

The certificate comes from the proof of P1's Lemma 3.3 (paper-notes §3): if input :math:`x_i` had margin
:math:`w_r(s)\cdot x_i - b_r(s) < -\tau` when neuron :math:`r` was last looked at (step :math:`s`), then

.. math::

    w_r(t)\cdot x_i - b_r(t) \le w_r(s)\cdot x_i - b_r(s) + \|w_r(t) - w_r(s)\|\,\|x_i\| + |b_r(t) - b_r(s)|
    < -\tau + M_r(t), \qquad M_r(t) \le \sum_{s \le u < t} \big(\|\Delta w_r(u)\| \max_i\|x_i\| + |\Delta b_r(u)|\big),

so the pair stays inactive while :math:`M_r(t) < \tau`. Two such certificates are stacked per neuron:

- a full *examination* against every input (one BLAS product per batch of neurons) *lists* the inputs with margin
  :math:`\ge -\tau_2`; it is redone when the neuron has moved :math:`\tau_2` (checked exactly against its row at
  that examination);
- a *refresh* computes the listed pairs only and keeps as *candidates* those with margin :math:`\ge -\tau_1`; it is
  redone when the neuron has moved :math:`\tau_1 < \tau_2`.

A step computes only candidate pre-activations. Each neuron's update (a sparse–dense product over its active
pairs) is fused with its forward pass at the new iterate (a sampled dense–dense product over its candidates), in
one compiled neuron-major loop, so each weight row is read once per step; new rows go to a second buffer, which
makes a revert free. A neuron without active pairs has no gradient and never moves. :math:`\tau_1, \tau_2` follow
the observed movement :math:`v` per step: with :math:`N_1, N_2` the candidates and listed inputs per neuron and
:math:`D_1, D_2` their densities per unit of margin, the cost per neuron and step
:math:`N_1(\tau_1) + \tfrac{v}{\tau_1} N_2(\tau_2) + \tfrac{v}{\tau_2}\,\beta n` is smallest at
:math:`\tau_1 = \sqrt{v N_2 / D_1}`, :math:`\tau_2 = \sqrt{\beta n \tau_1 / D_2}`, with :math:`\beta` the cost of
examining one input by BLAS relative to computing one gathered pair.
"""

from __future__ import annotations

import itertools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

from sparsentk import _sparse_kernels as kern
from sparsentk.network import ShallowReLU

#: Candidate margin τ₁ of the first examination (before any movement has been observed).
INITIAL_MARGIN = 0.1
#: The first examination lists about this many times the inputs it makes candidates.
INITIAL_LIST_FACTOR = 4.0
#: Listed inputs per neuron are kept below this many times the candidates (bounds memory and refresh cost).
MAX_LIST_FACTOR = 16.0
#: Largest margin τ₂ of an examination.
MAX_MARGIN = 3.0
#: Neurons per BLAS block when examining against every input ...
EXAM_BLOCK = 1024
#: ... fewer when the block's products and lists would exceed this many bytes (many inputs).
EXAM_BYTES = 1 << 28
#: Cost of examining one input by BLAS relative to one gathered candidate pair (β above).
EXAM_COST = 1.0 / 3.0
#: Work per neuron (in candidate pairs) besides its candidates, for splitting neurons among threads.
NEURON_OVERHEAD = 8
#: The pool of lists is compacted when the space left behind by moved lists exceeds this fraction of it (and
#: COMPACT_MIN pairs).
COMPACT_FRACTION = 0.5
COMPACT_MIN = 1 << 16


HUGE_PAGE = 1 << 21


def _on_huge_pages(X: np.ndarray) -> np.ndarray:
    """A copy of X aligned to a 2 MiB page inside an allocation that NumPy asks Linux to back with huge pages
    (it does so for allocations of 4 MiB and more): gathered rows then miss the TLB far less (measured: 18 %
    faster gathers for a 1 MiB X). Elsewhere it is just an aligned copy."""
    size = max(X.nbytes + HUGE_PAGE, 2 * HUGE_PAGE)
    buffer = np.zeros(size, dtype=np.uint8)
    offset = -buffer.ctypes.data % HUGE_PAGE
    out = buffer[offset : offset + X.nbytes].view(X.dtype).reshape(X.shape)
    out[...] = X
    return out


def _product(A: np.ndarray, B: np.ndarray, out: np.ndarray) -> None:
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is reported by the loss
        np.matmul(A, B, out=out)


@cache
def _threads(workers: int) -> ThreadPoolExecutor:
    """A pool that runs single-threaded BLAS products side by side (idle threads wait; they do not spin)."""
    return ThreadPoolExecutor(workers, thread_name_prefix="sparsentk-blas")


class SparseEngine:
    """Exact sparse GD engine (the ``method="sparse"`` of :func:`sparsentk.train`)."""

    def __init__(self, net: ShallowReLU, X: np.ndarray, y: np.ndarray, shard=None) -> None:
        self.net, self.X, self.y = net, _on_huge_pages(X), y
        # sharded (sparsentk.distributed): net holds this process's neurons; evaluate reduces through shard.reduce.
        # τ₁, τ₂ follow this process's own neurons (they set the cost of a step, never its result).
        self.shard = shard
        self.scale_width = net.width if shard is None else shard.width  # the m of m^{-1/2}
        n, m = X.shape[0], net.width
        X = self.X
        self.xnorm = float(np.linalg.norm(X.astype(np.float64), axis=1).max(initial=0.0))
        self.parts = 4 * numba.get_num_threads()
        eps = float(np.finfo(net.dtype).eps)
        scale = float(np.abs(net.W).max(initial=0.0)) * math.sqrt(net.dim) * self.xnorm + float(
            np.abs(net.b).max(initial=0.0))
        self.slack = 64 * eps * max(scale, 1.0)  # rounding of a computed margin
        self.tau1 = max(INITIAL_MARGIN, 4 * self.slack)
        self.tau2 = self.tau1  # set by the first examination
        self.buffers = ((net.W, net.b), (np.empty_like(net.W), np.empty_like(net.b)))
        self.current = 0
        self.W0, self.b0 = net.W.copy(), net.b.copy()
        # rows at each neuron's last examination (the first examination fills them)
        self.W_exam, self.b_exam = np.empty_like(net.W), np.empty_like(net.b)
        self.dist, self.path_w = np.zeros(m), np.zeros(m)  # for the exact max distance from initialization
        self.moved1, self.moved2 = np.zeros(m), np.zeros(m)
        self.tau1_of, self.tau2_of = np.zeros(m), np.zeros(m)
        self.start = np.zeros(m, dtype=np.int64)
        self.cap = np.zeros(m, dtype=np.int64)
        self.n_act = np.zeros(m, dtype=np.int64)
        self.n_cand = np.zeros(m, dtype=np.int64)
        self.n_listed = np.zeros(m, dtype=np.int64)
        self.idx = np.empty(0, dtype=np.int32)
        self.init = np.empty(0, dtype=np.uint8)
        self.used = self.waste = 0
        self.init_ptr = np.zeros(m + 1, dtype=np.int64)
        self.init_idx = np.empty(0, dtype=np.int32)
        self.init_pairs = 0
        self.first = True
        self.f_part = np.zeros((self.parts, n))
        self.count_part = np.zeros((self.parts, n), dtype=np.int64)
        self.counters = np.zeros((self.parts, 7))
        self.exam_counts = np.zeros((self.parts, 2), dtype=np.int64)
        self.stale = np.zeros(m, dtype=np.uint8)
        self.residual = np.zeros(n, dtype=net.dtype)
        self.movement_w = 0.0
        self.active_pairs = 0
        self.reexamined = m
        self.loop_seconds = self.exam_seconds = 0.0  # of the last step: the fused loop, the examinations
        # examinations run one single-threaded BLAS product per thread: multi-threaded BLAS would leave its workers
        # spinning against the compiled loops that follow (measured: 2.5× slower loops)
        self.blas = ThreadpoolController()
        self.threads = _threads(numba.get_num_threads())

    # --- examinations -------------------------------------------------------------------------------------
    def _first_margins(self, Z: np.ndarray, b: np.ndarray) -> None:
        """τ₂ of the first examination: listing about INITIAL_LIST_FACTOR times the candidates of a sample."""
        below = -(Z - b[:, None])  # −margins
        below = np.sort(below[np.isfinite(below)])
        if below.size == 0:
            self.tau2 = self.tau1
            return
        candidates = np.searchsorted(below, self.tau1, side="right")
        target = min(below.size, int(INITIAL_LIST_FACTOR * max(candidates, 1)))
        self.tau2 = float(np.clip(below[target - 1], self.tau1, MAX_MARGIN))

    def _examine(self, neurons: np.ndarray) -> int:
        """Examine ``neurons`` (sorted) against every input at the current parameters: rebuild their lists and
        add their forward contributions. Returns the number of examined neurons."""
        W, b = self.buffers[self.current]
        n = self.X.shape[0]
        block_rows = max(self.parts, min(EXAM_BLOCK, EXAM_BYTES // (n * (W.itemsize + 4))))
        rows = min(len(neurons), block_rows)
        Z = np.empty((rows, n), dtype=W.dtype)
        listed = np.empty((rows, n), dtype=np.int32)
        counts = np.empty((rows, 3), dtype=np.int64)
        with self.blas.limit(limits=1, user_api="blas"):
            for lo in range(0, len(neurons), block_rows):
                block = neurons[lo : lo + block_rows]
                rows = len(block)
                contiguous = block[-1] - block[0] == rows - 1
                W_block = W[block[0] : block[-1] + 1] if contiguous else W[block]
                b_block = b[block[0] : block[-1] + 1] if contiguous else b[block]
                self._products(W_block, Z[:rows])
                if self.first and lo == 0:
                    self._first_margins(Z[:rows], b_block)
                kern.list_inputs(Z[:rows], b_block, self.tau1, self.tau2, listed[:rows], counts[:rows])
                if self.first and lo == 0:  # room for every list at the size of the first block's, and a half
                    self._reserve(int(1.6 * (counts[:rows, 1].mean() + 4) * self.net.width))
                self._place(block, counts[:rows])
                groups = np.linspace(0, rows, self.parts + 1).astype(np.int64)
                kern.absorb_exam(Z[:rows], b_block, listed[:rows], block, counts[:rows], self.tau1, self.net.a,
                                 self.start, self.n_act, self.n_cand, self.n_listed, self.idx, self.init,
                                 self.init_ptr, self.init_idx, self.first, groups, self.f_part, self.count_part,
                                 self.exam_counts)
        self.tau1_of[neurons] = self.tau1
        self.tau2_of[neurons] = self.tau2
        self.moved1[neurons] = 0.0
        self.moved2[neurons] = 0.0
        self.W_exam[neurons] = W[neurons]
        self.b_exam[neurons] = b[neurons]
        return len(neurons)

    def _products(self, W_block: np.ndarray, Z: np.ndarray) -> None:
        """Z = W_block @ Xᵀ, one single-threaded BLAS product per thread on its share of the rows."""
        parts = numba.get_num_threads()
        cuts = [len(Z) * p // parts for p in range(parts + 1)]
        jobs = [self.threads.submit(_product, W_block[lo:hi], self.X.T, Z[lo:hi])
                for lo, hi in itertools.pairwise(cuts) if hi > lo]
        for job in jobs:
            job.result()

    def _place(self, block: np.ndarray, counts: np.ndarray) -> None:
        """Slots for a block of examined neurons; grows the pool, and compacts it when much of it is waste."""
        self.used, needed, freed = kern.place(block, counts, self.start, self.cap, self.used, len(self.idx))
        self.waste += freed
        if needed > len(self.idx):
            self._reserve(max(needed, int(1.5 * len(self.idx))))
        if self.waste > max(COMPACT_FRACTION * self.used, COMPACT_MIN):
            new_cap = self.n_listed + self.n_listed // 2 + 4
            new_cap[block] = np.maximum(new_cap[block], self.cap[block])  # the block's new sizes
            new_start = np.concatenate([[0], np.cumsum(new_cap)[:-1]]).astype(np.int64)
            size = int(new_cap.sum())
            new = [np.zeros(size, dtype=v.dtype) for v in (self.idx, self.init)]
            kern.compact(self.start, self.n_listed, self.idx, self.init, new_start, *new)
            self.idx, self.init = new
            self.start, self.cap, self.used, self.waste = new_start, new_cap, size, 0

    def _reserve(self, size: int) -> None:
        """Grow the pool to at least ``size`` pairs."""
        if size <= len(self.idx):
            return
        for name in ("idx", "init"):
            old = getattr(self, name)
            new = np.empty(size, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    # --- the engine protocol -------------------------------------------------------------------------------
    @np.errstate(over="ignore", invalid="ignore")
    def evaluate(self) -> dict[str, float]:
        net = self.net
        if self.first:  # t = 0: examine every neuron; the current pattern is the initial one
            self.f_part[:] = 0.0
            self.count_part[:] = 0
            self.exam_counts[:] = 0
            self._examine(np.arange(net.width))
            self.first = False
            self.init_ptr, self.init_idx = kern.active_lists(self.start, self.n_act, self.idx)
            self.init_pairs = int(self.exam_counts[:, 0].sum())
            self.counters[:] = 0.0
        active = int(self.counters[:, 0].sum() + self.exam_counts[:, 0].sum())
        both = int(self.counters[:, 1].sum() + self.exam_counts[:, 1].sum())
        f = self.f_part.sum(axis=0)
        counts = self.count_part.sum(axis=0)
        b = self.buffers[self.current][1]
        self.active_pairs = active
        sums = [active + self.init_pairs - 2 * both, active, int(self.n_cand.sum()), int(self.n_listed.sum()),
                int(self.counters[:, 5].sum()), int(self.counters[:, 4].sum()), self.reexamined,
                int(self.counters[:, 6].sum())]
        maxima = [self.movement_w, float(np.abs(b - self.b0).max(initial=0.0)), self.loop_seconds, self.exam_seconds]
        if self.shard is not None:  # the one communication of a sharded step
            (f, counts), sums, maxima = self.shard.combine([f, counts], sums, maxima)
            sums = [int(v) for v in sums]
        flips, active, candidates, listed, computed, refreshed, reexamined, nonfinite = sums
        f = f / math.sqrt(self.scale_width)
        residual = f - self.y
        self.residual = residual.astype(net.dtype)
        # a parameter that overflowed makes the dense loss non-finite too (its pre-activations are not finite)
        loss = math.nan if nonfinite else 0.5 * float(residual @ residual)
        return {
            "loss": loss,
            "active_mean": float(counts.mean()),
            "active_max": float(counts.max()),
            "flips": flips,
            "movement_w": maxima[0],
            "movement_b": maxima[1],
            "active_pairs": active,
            "candidates": candidates,
            "listed": listed,
            "computed": computed,
            "refreshed": refreshed,
            "reexamined": reexamined,
            "loop_seconds": maxima[2],
            "exam_seconds": maxima[3],
        }

    @np.errstate(over="ignore", invalid="ignore")
    def step(self, lr: float) -> None:
        net = self.net
        (W, b), (W_next, b_next) = self.buffers[self.current], self.buffers[1 - self.current]
        tick = time.perf_counter()
        bounds = kern.split_by_work(self.n_cand, self.parts, NEURON_OVERHEAD)
        self.stale[:] = 0
        kern.step_and_forward(self.X, W, b, W_next, b_next, net.a, self.residual, lr / math.sqrt(self.scale_width),
                              self.start, self.n_act, self.n_cand, self.n_listed, self.idx, self.init, self.tau1_of,
                              self.tau2_of, self.moved1, self.moved2, self.W_exam, self.b_exam, self.path_w,
                              self.xnorm, self.slack, self.tau1, self.stale, bounds, self.f_part, self.count_part,
                              net.dtype.type(0), self.counters)
        self.current = 1 - self.current
        net.W, net.b = W_next, b_next
        self.loop_seconds = time.perf_counter() - tick
        self._adapt_margins()
        self.exam_counts[:] = 0
        tick = time.perf_counter()
        self.reexamined = self._examine(np.flatnonzero(self.stale))
        self.exam_seconds = time.perf_counter() - tick
        self.movement_w = float(kern.exact_movement(W_next, self.W0, self.dist, self.path_w, bounds))

    def _adapt_margins(self) -> None:
        """τ₁, τ₂ from this step's movement and the current list sizes (see the module docstring)."""
        moving = self.counters[:, 3].sum()
        total = self.counters[:, 2].sum()
        if not (moving > 0 and math.isfinite(total) and total > 0):
            return
        m, n = self.net.width, self.X.shape[0]
        v = total / moving
        active = self.active_pairs / m
        n1, n2 = self.n_cand.mean(), self.n_listed.mean()
        d1 = max(n1 - active, 1.0 / m) / max(float(self.tau1_of.mean()), self.slack)
        d2 = max(n2 - active, 1.0 / m) / max(float(self.tau2_of.mean()), self.slack)
        tau2_cap = min(MAX_MARGIN, max(MAX_LIST_FACTOR * n1 - active, 0.0) / d2)
        tau1 = math.sqrt(v * n2 / d1)
        tau2 = math.sqrt(EXAM_COST * n * tau1 / d2)
        self.tau2 = float(np.clip(tau2, 8 * self.slack, max(tau2_cap, 8 * self.slack)))
        self.tau1 = float(np.clip(tau1, 4 * self.slack, self.tau2))

    def revert(self) -> None:
        self.current = 1 - self.current
        self.net.W, self.net.b = self.buffers[self.current]

    def restart(self, W: np.ndarray, b: np.ndarray) -> None:
        """Continue from ``W``, ``b`` (a resumed checkpoint): every neuron is examined there, against the initial
        activations of the first examination (for flips), and its distance from initialization is recomputed."""
        self.current = 0
        np.copyto(self.buffers[0][0], W)
        np.copyto(self.buffers[0][1], b)
        self.net.W, self.net.b = self.buffers[0]
        moved = self.net.W.astype(np.float64) - self.W0
        self.dist[:] = np.sqrt(np.einsum("ij,ij->i", moved, moved))
        self.path_w[:] = 0.0
        self.movement_w = float(self.dist.max(initial=0.0))
        self.f_part[:] = 0.0
        self.count_part[:] = 0
        self.counters[:] = 0.0
        self.exam_counts[:] = 0
        self.reexamined = self._examine(np.arange(self.net.width))

    def close(self) -> None:
        """Leave the final parameters in the arrays the network had before training."""
        W, b = self.buffers[self.current]
        if self.current:
            np.copyto(self.buffers[0][0], W)
            np.copyto(self.buffers[0][1], b)
            self.current = 0
        self.net.W, self.net.b = self.buffers[0]
