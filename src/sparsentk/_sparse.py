r"""Exact sparse gradient descent: the cost of a step follows the active neuron–input pairs, not n × width.

The certificate comes from the proof of P1's Lemma 3.3 (paper-notes §3): if neuron :math:`r` was examined at
step :math:`s` and input :math:`x_i` had margin :math:`w_r(s)\cdot x_i - b_r(s) < -\tau`, then

.. math::

    w_r(t)\cdot x_i - b_r(t) \le w_r(s)\cdot x_i - b_r(s) + \|w_r(t) - w_r(s)\|\,\|x_i\| + |b_r(t) - b_r(s)|
    < -\tau + M_r(t), \qquad M_r(t) = \sum_{s \le u < t} \big(\|\Delta w_r(u)\| \max_i\|x_i\| + |\Delta b_r(u)|\big),

so the pair stays inactive while :math:`M_r(t) < \tau`. Each neuron therefore keeps the inputs whose margin was
above :math:`-\tau` (its candidates); a step computes only candidate pre-activations (forward: a sampled
dense–dense product) and sums residuals over active pairs (backward: a sparse–dense product), both neuron-major in
compiled loops; a neuron is re-examined against every input (one BLAS product per batch of neurons) when
:math:`M_r` reaches :math:`\tau`. A neuron without candidates has no gradient and never moves. :math:`\tau` is
chosen from the observed movement to balance candidate work against re-examinations.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.stats import norm
from threadpoolctl import ThreadpoolController

from sparsentk import _sparse_kernels as kern
from sparsentk.network import ShallowReLU

#: Margin of the first examination (before any movement has been observed).
INITIAL_MARGIN = 0.25
#: Neurons per BLAS block when (re-)examining against every input.
EXAM_BLOCK = 1024
#: Relative cost of re-examining a neuron against every input (BLAS) per candidate pair (compiled gather):
#: τ = sqrt(v / (REEXAM_WEIGHT · density)) balances candidate work against re-examinations.
REEXAM_WEIGHT = 3.0


class SparseEngine:
    """Exact sparse GD engine (the ``method="sparse"`` of :func:`sparsentk.train`)."""

    def __init__(self, net: ShallowReLU, X: np.ndarray, y: np.ndarray) -> None:
        self.net, self.X, self.y = net, X, y
        n, m = X.shape[0], net.width
        norms = np.linalg.norm(X.astype(np.float64), axis=1)
        self.xnorm = float(norms.max())
        positive = norms[norms > 0]
        # density of the margins w·x − B at 0 for w ~ N(0, I): mean over inputs of φ(B/‖x‖)/‖x‖
        self.density = float(np.mean(norm.pdf(net.bias / positive) / positive)) if positive.size else 1.0
        self.parts = 4 * numba.get_num_threads()
        eps = float(np.finfo(net.dtype).eps)
        scale = float(np.abs(net.W).max(initial=0.0)) * math.sqrt(net.dim) * self.xnorm + float(
            np.abs(net.b).max(initial=0.0))
        self.slack = 64 * eps * max(scale, 1.0)
        self.margin = max(INITIAL_MARGIN, 4 * self.slack)
        self.W0, self.b0 = net.W.copy(), net.b.copy()
        self.W_exam, self.b_exam = net.W.copy(), net.b.copy()  # rows at each neuron's last examination
        self.old_W, self.old_b = np.empty_like(net.W), np.empty_like(net.b)
        self.touched = np.zeros(m, dtype=np.uint8)
        self.moved = np.zeros(m)
        self.dist_w, self.dist_b = np.zeros(m), np.zeros(m)
        self.margins = np.full(m, self.margin)
        self.ptr, self.idx = self._examine(np.arange(m))
        # re-examinations are small products between compiled parallel loops: multi-threaded BLAS would leave its
        # workers spinning against numba's threads (measured: forward and backward 25 % slower), so they use one
        self.blas = ThreadpoolController()
        self.init = np.zeros(len(self.idx), dtype=np.uint8)
        self.act = np.zeros(len(self.idx), dtype=np.uint8)
        self.init_ptr: np.ndarray | None = None
        self.init_idx = np.empty(0, dtype=self.idx.dtype)
        self.init_pairs = 0
        self.f_part = np.zeros((self.parts, n))
        self.count_part = np.zeros((self.parts, n), dtype=np.int64)
        self.residual = np.zeros(n)
        self.reexamined = m

    def _examine(self, neurons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidate lists (CSR over ``neurons``) of inputs with margin ≥ −margin, by BLAS over neuron blocks."""
        net, X = self.net, self.X
        counts = np.empty(len(neurons), dtype=np.int64)
        pieces = []
        for lo in range(0, len(neurons), EXAM_BLOCK):
            block = neurons[lo : lo + EXAM_BLOCK]
            Z = net.W[block] @ X.T
            Z -= net.b[block][:, None]
            kern.select_candidates(Z, self.margin, counts[lo : lo + len(block)])
            offsets = np.concatenate([[0], np.cumsum(counts[lo : lo + len(block)])])
            out = np.empty(offsets[-1], dtype=np.int32)
            kern.fill_candidates(Z, self.margin, offsets, out)
            pieces.append(out)
        ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        idx = np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int32)
        return ptr, idx

    @np.errstate(over="ignore", invalid="ignore")
    def evaluate(self) -> dict[str, float]:
        net = self.net
        bounds = kern.split_by_work(self.ptr, self.parts)
        active, both = kern.forward(self.X, net.W, net.b, net.a, self.ptr, self.idx, self.init, self.act, bounds,
                                    self.f_part, self.count_part, net.dtype.type(0))
        if self.init_ptr is None:  # t = 0: the current pattern is the initial one
            self.init[:] = self.act
            self.init_ptr, self.init_idx = kern.active_lists(self.ptr, self.idx, self.act)
            self.init_pairs = both = int(active)
        f = self.f_part.sum(axis=0) / math.sqrt(net.width)
        counts = self.count_part.sum(axis=0)
        self.residual = f - self.y
        loss = 0.5 * float(self.residual @ self.residual)
        return {
            "loss": loss,
            "active_mean": float(counts.mean()),
            "active_max": float(counts.max()),
            "flips": int(active) + self.init_pairs - 2 * int(both),
            "movement_w": float(self.dist_w.max()),
            "movement_b": float(self.dist_b.max()),
            "active_pairs": int(active),
            "candidates": len(self.idx),
            "reexamined": self.reexamined,
        }

    @np.errstate(over="ignore", invalid="ignore")
    def step(self, lr: float) -> None:
        net = self.net
        bounds = kern.split_by_work(self.ptr, self.parts)
        total = kern.backward_update(self.X, net.W, net.b, net.a, self.ptr, self.idx, self.act, self.residual,
                                     lr / math.sqrt(net.width), self.W0, self.b0, self.W_exam, self.b_exam,
                                     self.xnorm, self.moved, self.dist_w, self.dist_b, self.touched, self.old_W,
                                     self.old_b, bounds)
        moving = int(np.count_nonzero(self.touched))
        if moving and math.isfinite(total) and total > 0:
            # balance candidate work (density · τ per step) against re-examinations (every τ / v steps), with v
            # the movement per step of a moving neuron
            tau = math.sqrt(total / moving / (REEXAM_WEIGHT * self.density))
            self.margin = float(np.clip(tau, 4 * self.slack, 3.0))
        stale = np.flatnonzero(self.moved + self.slack >= self.margins)
        self.reexamined = len(stale)
        if len(stale):
            with self.blas.limit(limits=1, user_api="blas"):
                new_ptr, new_idx = self._examine(stale)
            slot = np.full(net.width, -1, dtype=np.int64)
            slot[stale] = np.arange(len(stale))
            self.ptr, self.idx, self.init = kern.merge_lists(self.ptr, self.idx, self.init, slot, new_ptr, new_idx,
                                                             self.init_ptr, self.init_idx)
            self.act = np.zeros(len(self.idx), dtype=np.uint8)
            self.margins[stale] = self.margin
            self.moved[stale] = 0.0
            self.W_exam[stale] = net.W[stale]
            self.b_exam[stale] = net.b[stale]

    def revert(self) -> None:
        kern.restore(self.net.W, self.net.b, self.touched, self.old_W, self.old_b)
