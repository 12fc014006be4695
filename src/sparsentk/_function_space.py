r"""Exact gradient descent in function space: a step costs one n × n product plus the neurons that need attention.

While no neuron–input pair crosses its threshold, GD on the network is exactly GD on the linear model with the
current empirical NTK (paper-notes §7). With :math:`A` the activation pattern, :math:`G = XX^\top`,
:math:`c = \eta m^{-1/2}` and :math:`e = f - y`:

.. math::

    z_{rj}(t+1) = z_{rj}(t) - c\,a_r \sum_{i \in A_r} e_i(t)\,(G_{ij} + 1), \qquad
    f(t+1) = f(t) - \eta H_A e(t), \qquad H_A = (G + 1) \odot A^\top A / m,

and a pair (r, j) that crosses at step t+1 corrects :math:`f_j(t+1)` by :math:`\pm m^{-1/2} a_r z_{rj}(t+1)` and
O(|A_r|) entries of the integer counts :math:`C = A^\top A` (H_A is never stored: the product reads G + 1 and C).

**Certificates** (P1 Lemma 3.3's strip, paper-notes §3 and §7). Each neuron has an *anchor* step :math:`s_r` where
its weights are stored and its nearest margin :math:`\mu_r` is known: its listed pairs exactly, the others through
its last examination (every input, margin ≥ τ₂ then) less its movement since. With the cumulative residual
:math:`E(t) = \sum_{u<t} e(u)`, the weights need not exist in between:

.. math::

    w_r(t) = w_r(s_r) - c\,a_r X_{A_r}^\top \Delta E, \quad b_r(t) = b_r(s_r) + c\,a_r \mathbf 1^\top\Delta E,
    \quad \Delta E = (E(t) - E(s_r))_{A_r},

and the same identity gives every pre-activation without the weights:
:math:`z_{rj}(t) = z_{rj}(s_r) - c\,a_r(\mathbf 1^\top\Delta E + x_j\cdot X_{A_r}^\top\Delta E)`, and
:math:`|z_{rj}(t) - z_{rj}(s_r)| \le c(|\mathbf 1^\top\Delta E| + \sigma_r\|\Delta E\|\,\|x_j\|)`, σ_r ≥ ‖X_{A_r}‖_op
(Gershgorin on :math:`G_{A_rA_r}` for small active sets, else Frobenius). The same numbers are
:math:`\sum_{i\in A_r}\Delta E_i (G_{ij} + 1)`, |A_r| entries of G + 1, but an n × n array does not stay in
cache (n = 2048: 32 MB): in probes a lookup cost about as much as a product with a row of the cache-resident X
(d = 128), so the exact values come from :math:`X_{A_r}^\top\Delta E` and rows of X.

The residual changes slowly (ηλ_max ≪ 1 in the NTK regime), so a neuron's pairs move at nearly constant speed.
Every ``REFRESH_EVERY`` steps the residual of that step becomes the *reference* :math:`\bar e`, with its deviation
clock :math:`V(t) = \sum_{u<t} c\|e(u) - \bar e\|_\infty`. A neuron is certified at iterate T (function
``_certify`` of ``sparsentk._function_space_kernels``): for each pair its margin m (exact for the listed pairs near
the threshold, bounded for the others and, through τ₂ less the movement, for the inputs not listed) and
its approach speed v per step (exact, :math:`c\,a_r(\mathbf 1^\top\bar e_{A_r} + x_j\cdot X_{A_r}^\top\bar e)`
with the sign of its side, or bounded); it stays on its side for k more steps while :math:`v k \le m - \mu_V` and
:math:`K_r (V(T+k) - V(T)) < \mu_V`, with :math:`K_r = |A_r| + \max_j\|x_j\|\min(\sum_{A_r}\|x_i\|,
\sigma_r\sqrt{|A_r|})` and a share θ of the nearest margin reserved as μ_V. The neuron is due at the first iterate
where either fails (or its reference leaves the ring of ``RING`` references), and is then certified again —
without its weights. Only when a listed pair has crossed (or lies within the rounding slack) are its weights
brought up to date from its anchor, every listed pair recomputed from them, the crossings applied and the neuron
anchored again; when its movement since its last examination reaches τ₂ it is examined against every input
(BLAS) and the difference of its active sets applied. So a step costs the n × n product, a scan of the
deadlines, the neurons that are due (|A_r| rows of X, and one per pair computed exactly) and the crossing neurons
(their weights and every listed pair recomputed).

**Exactness.** The residual lives in float64; crossings are decided on pre-activations computed from the stored
weights (rounded to the network's dtype), as dense GD decides them, so float64 networks follow dense GD up to
rounding. Every ``RESYNC_EVERY`` steps f is rebuilt from the weights on the tracked pattern (computed from the
anchors, which stay), and the largest change is recorded as ``drift``; at the end every neuron is brought up to
date. When many neurons need their weights every step (a large step, far from the NTK regime), the engine hands
over to the exact sparse engine, with the initial pattern and parameters it needs to keep flips and movement
exact.

**Sharding** (``sparsentk.distributed``). f, H_A and the pattern are sums over neurons: a process holding a
contiguous slice of the neurons keeps the partial :math:`H_A^{(k)} = (G + 1)\odot C^{(k)}/m` and counts
:math:`C^{(k)}` of its own neurons (m the whole width), and a step's partial increment
:math:`\Delta f^{(k)} = -\eta H_A^{(k)} e` plus its crossing corrections. ``evaluate`` makes the one reduction of
the step: the increments, the diagonals of :math:`C^{(k)}` (active counts), the outputs of the weights after a
rebuild or a resynchronization, the flips and counters (sums), and the movement, the non-finite flag and stage
seconds (maxima). The residual (float64) is then the same on every process, and so is every decision taken from
it: the deadlines (S, V and the references are functions of the residuals), the resynchronization steps and the
hand-over to the sparse engine, decided from the reduced count of neurons brought up to date.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import time

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

from sparsentk import _function_space_kernels as fkern
from sparsentk import _sparse
from sparsentk import _sparse_kernels as skern
from sparsentk._gram import gram
from sparsentk.network import ShallowReLU

#: Rebuild f from the weights (and record the drift) every this many steps.
RESYNC_EVERY = 100
#: Listed inputs per neuron at the first examination: about this many times its active inputs.
LIST_FACTOR = 4.0
#: Largest examination margin τ₂.
MAX_MARGIN = 3.0
#: Compiled loops run on one thread below this width (a parallel region costs more than the work there).
PARALLEL_MIN_WIDTH = 1 << 14
#: A new reference residual :math:`\bar e` (the residual of that step) every this many steps ...
REFRESH_EVERY = 2
#: ... kept in a ring of this many: a certificate lasts at most about RING · REFRESH_EVERY steps.
RING = 32
#: Share θ of a neuron's nearest margin reserved for the deviation of the residuals from :math:`\bar e`.
THETA = 0.5
#: Listed pairs whose bounded distance from the threshold allows fewer than this many steps at their bounded
#: speed are computed exactly (a product with a row of X each) when their neuron is certified.
HORIZON = 4.0
#: Hand over to the sparse engine when more than this fraction of the neurons is brought up to date (each costs
#: two to four times a neuron of a sparse step, in probes at widths 2^15–2^18) ...
FALLBACK_FRACTION = 0.25
#: ... at each of this many consecutive steps.
FALLBACK_PATIENCE = 5

#: Counters and stage seconds of a step (reduced by ``evaluate``: sums and maxima).
_STEP_SUMS = ("due", "renewed_from_E", "renewed", "updated", "reexamined", "crossings", "exact_pairs")
_STEP_SECONDS = ("product_seconds", "check_seconds", "crossing_seconds", "exam_seconds")

#: ``method="auto"`` picks ``"kernel"`` over ``"sparse"`` only when the estimated fraction of neurons that need
#: attention per step (:func:`due_fraction`) is at most this: the measured crossover (``benchmarks/
#: bench_function_space.py --only crossover`` and ``--only widths``, n = 2048, d = 128, float32). At B = 2.5 the
#: kernel method is 2.4–2.5× and 1.5–2.0× as fast as the sparse one at counted fractions 0.12 and 0.16 (lr 0.05,
#: widths 2^18 and 2^16, two runs) and 0.2–0.8× at 0.21–0.72; at B = 3, lr 2 it is 0.74–0.95× at 0.14 (width
#: 2^22), where the rule errs toward ``"kernel"`` (steps there are large and crossing neurons a third of the due
#: ones) ...
AUTO_KERNEL_DUE = 0.18
#: κ and α of :func:`due_fraction`.
DUE_CONSTANT = 0.96
DUE_EXPONENT = 0.4
#: ... and width · active fraction · dim ≥ this times n (the fixed n × n product against the sparse method's
#: width · p · n · dim per step) ...
AUTO_KERNEL_RATIO = 8.0
#: ... and its n × n arrays (G + 1 in float64, C in int32: 12 n² bytes) take at most this fraction of the
#: physical memory.
AUTO_KERNEL_MEMORY = 0.25


def due_fraction(X: np.ndarray, y: np.ndarray, bias: float, width: int, lr: float) -> float:
    r"""Estimated fraction of neurons whose certificate expires at a step, early in training, up to constants:

    .. math::

        q = \kappa\,x^{\alpha}, \qquad
        x = \frac{\text{speed of a pair per step}}{\text{typical nearest margin}}
          \approx \eta\,m^{-1/2}\,\mathrm{rms}(y)\sqrt{|A_r|} \cdot \rho, \qquad
        |A_r| = \sum_i \bar\Phi(B/\|x_i\|), \quad \rho = \sum_i \varphi(B/\|x_i\|)/\|x_i\|,

    with :math:`\eta m^{-1/2}|\sum_{i\in A_r} e_i (x_i\cdot x_j + 1)| \approx \eta m^{-1/2}\,\mathrm{rms}(e)
    \sqrt{|A_r|}` the speed of a pair under the reference residual (:math:`e(0) \approx -y`) and :math:`1/\rho` the
    typical distance from the threshold of a neuron's nearest pair (ρ: density of :math:`w\cdot x_i - B` at 0,
    summed over the inputs). If certificates lasted exactly margin / speed, q would be proportional to x; the
    measured fraction falls more slowly (the reserve for the residual's deviation, the ring of references and the
    near pairs seen from both sides do not shrink with the step), so κ = ``DUE_CONSTANT`` and α = ``DUE_EXPONENT``
    are fitted to ``benchmarks/bench_function_space.py --only crossover`` and ``--only widths`` (n = 2048,
    d = 128, B = 2.5 and 3, lr 0.05–2, widths 2^12–2^22: the counted fraction is 0.9–1.3 times this). Capped at 1."""
    from scipy.special import ndtr

    norms = np.linalg.norm(np.asarray(X, dtype=np.float64), axis=1)
    norms = norms[norms > 0]
    if norms.size == 0:
        return 1.0
    t = bias / norms
    active = float(np.sum(ndtr(-t)))
    density = float(np.sum(np.exp(-0.5 * t * t) / (math.sqrt(2 * math.pi) * norms)))
    y64 = np.asarray(y, dtype=np.float64)
    scale = max(math.sqrt(float(np.mean(y64 * y64))) if y64.size else 0.0, 1e-12)
    x = lr / math.sqrt(width) * scale * math.sqrt(active) * density
    return min(1.0, DUE_CONSTANT * x**DUE_EXPONENT)


def prefers_kernel(n: int, dim: int, width: int, fraction: float, due: float = 0.0) -> bool:
    r"""The ``method="auto"`` rule between ``"kernel"`` and ``"sparse"`` (both exact; the caller has already
    chosen a sparse method from the expected active fraction p; ``due`` is :func:`due_fraction`):

    .. math::

        q \le \texttt{AUTO\_KERNEL\_DUE}, \quad m\,p\,d \ge \texttt{AUTO\_KERNEL\_RATIO}\cdot n
        \quad\text{and}\quad 12 n^2 \le \texttt{AUTO\_KERNEL\_MEMORY}\cdot\text{physical memory}.
    """
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        memory = 8 << 30
    return (due <= AUTO_KERNEL_DUE and width * fraction * dim >= AUTO_KERNEL_RATIO * n
            and 12 * n * n <= AUTO_KERNEL_MEMORY * memory)


def _threaded(method):  # type: ignore[no-untyped-def]
    """Run an engine method with the engine's numba thread count (restored afterwards)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        previous = numba.get_num_threads()
        numba.set_num_threads(self.workers)
        try:
            return method(self, *args, **kwargs)
        finally:
            numba.set_num_threads(previous)

    return wrapper


class KernelEngine:
    """Exact GD in function space (the ``method="kernel"`` of :func:`sparsentk.train`)."""

    def __init__(self, net: ShallowReLU, X: np.ndarray, y: np.ndarray, shard=None) -> None:
        # sharded (sparsentk.distributed): net holds this process's neurons, C its partial sums over them;
        # evaluate reduces the partial increment of f, the counts and the statistics through shard.combine.
        self.shard = shard
        self.scale_width = net.width if shard is None else shard.width  # the m of m^{-1/2} and of H = (G+1)⊙C/m
        self.net = net
        self.X_user, self.y_user = X, y
        self.X = _sparse._on_huge_pages(X)
        self.y = y.astype(np.float64)
        n, m = X.shape[0], net.width
        X64 = X.astype(np.float64)
        self.xnorm = np.sqrt(np.einsum("ij,ij->i", X64, X64))
        self.xmax = float(self.xnorm.max(initial=0.0))
        self.G1 = gram(X64)  # exactly symmetric, never numpy's syrk (DEVELOPERS.md)
        self.G1 += 1.0
        self.workers = numba.get_num_threads() if m >= PARALLEL_MIN_WIDTH else 1
        self.parts = 4 * self.workers
        self.W0, self.b0 = net.W.copy(), net.b.copy()
        self.inv_sqrt_m = 1.0 / math.sqrt(self.scale_width)
        self._set_slack()
        self.tau2 = 0.0
        i64, f64 = np.int64, np.float64
        self.start, self.cap = np.zeros(m, dtype=i64), np.zeros(m, dtype=i64)
        self.n_act, self.n_listed, self.n_cand = (np.zeros(m, dtype=i64) for _ in range(3))
        self.mu, self.K, self.Kw, self.F = (np.zeros(m, dtype=f64) for _ in range(4))
        # certificates: due at iterate Dt, or when the deviation clock V[ep % RING] reaches DV (paper-notes §7)
        self.Dt, self.DV = np.full(m, -np.inf), np.full(m, np.inf)
        self.ep = np.full(m, -(1 << 40), dtype=i64)
        self.ebar = np.zeros((RING, n))  # reference residuals of the last RING epochs
        self.V = np.zeros(RING)  # their deviation clocks Σ_u c‖e(u) − ē‖∞
        self.epoch = -1
        # movement certificates (``fkern.movement``): S, iterate, deviation clock, epoch, weight and bias speeds
        self.mcert = (np.full(m, -1.0), np.zeros(m), np.zeros(m), np.full(m, -1, dtype=i64), np.zeros(m), np.zeros(m))
        self.tau2_of, self.moved2, self.slop = np.zeros(m), np.zeros(m), np.zeros(m)
        self.dist, self.Sd, self.bdist, self.Sb = (np.zeros(m) for _ in range(4))
        self.idx = np.empty(0, dtype=np.int32)
        self.init = np.empty(0, dtype=np.uint8)
        self.zref = np.empty(0)
        self.eref = np.empty(0)
        self.crossed = np.empty(0, dtype=np.uint8)
        self.used = self.waste = 0
        self.init_ptr = np.zeros(m + 1, dtype=i64)
        self.init_idx = np.empty(0, dtype=np.int32)
        self.init_pairs = 0
        self.f_part = np.zeros((self.parts, n))
        self.count_part = np.zeros((self.parts, n), dtype=i64)
        self.exam_counts = np.zeros((self.parts, 2), dtype=i64)
        self.f = np.zeros(n)
        self.df = np.zeros(n)  # this process's increment of f at the step (reduced by evaluate)
        self.f_full = np.zeros(n)  # this process's Σ_r a_r relu(z_ri) after a rebuild or resync (reduced too)
        self.full = False  # f_full is pending (a rebuild since the last evaluate)
        self.stepped = False  # a step since the last evaluate (its counters are pending)
        self.e = np.zeros(n)
        self.E_prev = np.zeros(n)  # E at the previous iterate (for a revert)
        self.E = np.zeros(n)
        self.S = 0.0
        self.cs = 0.0
        self.C = np.zeros((0, 0), dtype=np.int32)
        self.flips = 0
        self.entered = 0
        self.t = 0
        self.first = True
        self.nonfinite = False
        self.reverted = False
        self.undo_W = np.empty((0, net.dim), dtype=net.dtype)  # rows at the previous iterate, for a revert
        self.undo_b = np.empty(0, dtype=net.dtype)
        self.due = np.empty(0, dtype=i64)
        self.moved = (0.0, 0.0)  # the last R_w, R_b
        self.level = np.empty(0, dtype=np.uint8)
        self.busy = 0
        self.pending_fallback = False
        self.fallback: _sparse.SparseEngine | None = None
        self.drift = math.nan
        self.counts_step = np.zeros(len(_STEP_SUMS))
        self.seconds_step = np.zeros(len(_STEP_SECONDS))
        self.blas = ThreadpoolController()
        self.threads = _sparse._threads(self.workers)

    def _set_slack(self, moved_w: float = 0.0, moved_b: float = 0.0) -> None:
        """Rounding allowance of a computed margin: 64 ε (max ‖w_r‖ max ‖x‖ + max |b_r|) in the network's dtype,
        the norms of the stored rows plus ``moved_w``, ``moved_b`` (for rows stored at older anchors)."""
        net = self.net
        eps = float(np.finfo(net.dtype).eps)
        with np.errstate(over="ignore", invalid="ignore"):
            rows = float(np.sqrt(np.einsum("ij,ij->i", net.W, net.W, dtype=np.float64)).max(initial=0.0))
            scale = (rows + moved_w) * self.xmax + float(np.abs(net.b).max(initial=0.0)) + moved_b
        self.slack = 64 * eps * max(scale if math.isfinite(scale) else 1.0, 1.0)

    # --- examinations (every input, by BLAS; the pool layout and loops of the sparse engine) ----------------
    def _examine(self, neurons: np.ndarray, diff: bool) -> tuple[np.ndarray, ...] | None:
        """Examine ``neurons`` (sorted) against every input at their stored weights (which must be current) and
        anchor them. With ``diff``, returns the saved active lists and the pairs that left (for
        :func:`fkern.apply_crossings`) and flags the pairs that entered."""
        net = self.net
        W, b = net.W, net.b
        n = self.X.shape[0]
        block_rows = max(self.parts, min(_sparse.EXAM_BLOCK, _sparse.EXAM_BYTES // (n * (W.itemsize + 4))))
        rows = min(len(neurons), block_rows)
        Z = np.empty((rows, n), dtype=W.dtype)
        listed = np.empty((rows, n), dtype=np.int32)
        counts = np.empty((rows, 3), dtype=np.int64)
        saved = None
        if diff:
            old_ptr, old_idx, old_init = fkern.save_active(neurons, self.start, self.n_act, self.idx, self.init)
            leave = (np.zeros(len(neurons), dtype=np.int64), np.empty(len(old_idx), dtype=np.int64),
                     np.empty(len(old_idx)), np.empty(len(old_idx), dtype=np.uint8))
            saved = (old_ptr, old_idx, old_init, leave)
        with self.blas.limit(limits=1, user_api="blas"):
            for lo in range(0, len(neurons), block_rows):
                block = neurons[lo : lo + block_rows]
                rows = len(block)
                W_block, b_block = W[block], b[block]
                self._products(W_block, Z[:rows])
                if self.first and lo == 0:
                    self._first_margin(Z[:rows], b_block)
                skern.list_inputs(Z[:rows], b_block, self.tau2, self.tau2, listed[:rows], counts[:rows])
                if self.first and lo == 0:
                    self._reserve(int(1.6 * (counts[:rows, 1].mean() + 4) * net.width))
                self._place(block, counts[:rows])
                groups = np.linspace(0, rows, self.parts + 1).astype(np.int64)
                skern.absorb_exam(Z[:rows], b_block, listed[:rows], block, counts[:rows], self.tau2, net.a,
                                  self.start, self.n_act, self.n_cand, self.n_listed, self.idx, self.init,
                                  self.init_ptr, self.init_idx, self.first, groups, self.f_part, self.count_part,
                                  self.exam_counts)
                if saved is not None:
                    old_ptr, old_idx, old_init, leave = saved
                    self.entered += fkern.exam_diff(Z[:rows], b_block, block, lo, old_ptr, old_idx, old_init,
                                                    self.start, self.n_act, self.idx, self.crossed, *leave)
                fkern.anchor_exam(Z[:rows], b_block, block, self.start, self.n_act, self.n_listed, self.idx,
                                  self.zref, self.eref, self.E, self.xnorm, self.xmax, self.tau2_of, self.moved2,
                                  self.slop, self.mu, self.K, self.Kw, self.F, self.Dt, self.S, self.tau2, W, self.W0,
                                  self.b0, self.dist, self.Sd, self.bdist, self.Sb, self.X)
        if saved is None:
            return None
        old_ptr, _, _, (count, idx, z, init) = saved
        return old_ptr[:-1], count, idx, z, init

    def _products(self, W_block: np.ndarray, Z: np.ndarray) -> None:
        """Z = W_block @ Xᵀ, one single-threaded BLAS product per thread on its share of the rows."""
        parts = numba.get_num_threads()
        if parts == 1:
            _sparse._product(W_block, self.X.T, Z)
            return
        cuts = [len(Z) * p // parts for p in range(parts + 1)]
        jobs = [self.threads.submit(_sparse._product, W_block[lo:hi], self.X.T, Z[lo:hi])
                for lo, hi in itertools.pairwise(cuts) if hi > lo]
        for job in jobs:
            job.result()

    def _first_margin(self, Z: np.ndarray, b: np.ndarray) -> None:
        """τ₂: list about LIST_FACTOR times the active inputs of a first block of neurons."""
        below = -(Z.astype(np.float64) - b.astype(np.float64)[:, None])
        below = np.sort(below[np.isfinite(below)])
        floor = 8 * self.slack
        if below.size == 0:
            self.tau2 = floor
            return
        active = int(np.searchsorted(below, 0.0, side="right"))
        target = min(below.size, int(LIST_FACTOR * max(active, 1)))
        self.tau2 = float(np.clip(below[target - 1], floor, MAX_MARGIN))

    def _place(self, block: np.ndarray, counts: np.ndarray) -> None:
        """Slots for examined neurons (``sparsentk._sparse``'s layout); compacts the pool when much is waste."""
        self.used, needed, freed = skern.place(block, counts, self.start, self.cap, self.used, len(self.idx))
        self.waste += freed
        if needed > len(self.idx):
            self._reserve(max(needed, int(1.5 * len(self.idx))))
        if self.waste > max(_sparse.COMPACT_FRACTION * self.used, _sparse.COMPACT_MIN):
            new_cap = self.n_listed + self.n_listed // 2 + 4
            new_cap[block] = np.maximum(new_cap[block], self.cap[block])
            new_start = np.concatenate([[0], np.cumsum(new_cap)[:-1]]).astype(np.int64)
            size = int(new_cap.sum())
            pairs = [("idx", "init"), ("zref", "eref"), ("crossed", "crossed")]
            fresh = {}
            for first, second in pairs:
                new1 = np.zeros(size, dtype=getattr(self, first).dtype)
                new2 = np.zeros(size, dtype=getattr(self, second).dtype)
                skern.compact(self.start, self.n_listed, getattr(self, first), getattr(self, second), new_start,
                              new1, new2)
                fresh[first], fresh[second] = new1, new2
            for name, value in fresh.items():
                setattr(self, name, value)
            self.start, self.cap, self.used, self.waste = new_start, new_cap, size, 0

    def _reserve(self, size: int) -> None:
        if size <= len(self.idx):
            return
        for name in ("idx", "init", "zref", "eref", "crossed"):
            old = getattr(self, name)
            new = np.zeros(size, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def _rebuild(self) -> None:
        """Examine every neuron at its stored (current) weights: the pattern, f, C and H from scratch."""
        net = self.net
        self.f_part[:] = 0.0
        self.count_part[:] = 0
        self.exam_counts[:] = 0
        self._examine(np.arange(net.width), diff=False)
        ptr, idx = skern.active_lists(self.start, self.n_act, self.idx)
        if self.first:
            self.init_ptr, self.init_idx = ptr, idx
            self.init_pairs = int(self.exam_counts[:, 0].sum())
            self.first = False
        active = int(self.exam_counts[:, 0].sum())
        both = int(self.exam_counts[:, 1].sum())
        self.flips = active + self.init_pairs - 2 * both
        self.f_full = self.f_part.sum(axis=0)
        self.full = True
        self.df[:] = 0.0
        self._counts_from(ptr, idx)

    def _counts_from(self, ptr: np.ndarray, idx: np.ndarray) -> None:
        n, m = self.X.shape[0], self.net.width
        order = np.argsort(idx, kind="stable")
        owners = np.repeat(np.arange(m, dtype=np.int64), np.diff(ptr))[order]
        by_input_ptr = np.concatenate([[0], np.cumsum(np.bincount(idx, minlength=n))]).astype(np.int64)
        self.C = fkern.pattern_counts(ptr, idx, by_input_ptr, owners, n)

    # --- the engine protocol -------------------------------------------------------------------------------
    @np.errstate(over="ignore", invalid="ignore")
    @_threaded
    def evaluate(self) -> dict[str, float]:
        """The values of the current iterate. f(t+1) = f(t) + Δf with Δf the step's increment (sharded: the sum of
        the processes' increments), or the outputs of the weights after a rebuild or a resynchronization; the one
        reduction of a sharded step carries Δf, the active counts (diagonal of C), those outputs when rebuilt, the
        flips and counters (sums) and the movement, non-finite flag and stage seconds (maxima)."""
        if self.fallback is not None:
            values = self.fallback.evaluate()
            values["fallback"] = 1
            return values
        tick = time.perf_counter()
        if self.first:
            self._rebuild()
        resync = 0.0
        resyncing = self.t > 0 and self.t % RESYNC_EVERY == 0 and not self.full  # the same on every process
        if resyncing and not self.nonfinite:  # (an overflowing step is reverted: its anchors must stay)
            resync = self._resync()
        slot = max(self.epoch, 0) % RING
        move_w, move_b, exact = fkern.movement(self.X, self.net.W, self.net.b, self.W0, self.b0, self.net.a, self.E,
                                               self.cs, self.start, self.n_act, self.idx, self.eref, self.dist,
                                               self.Sd, self.Kw, self.bdist, self.Sb, self.S, self.parts,
                                               float(self.t), self.V, self.epoch, self.ebar[slot], *self.mcert)
        vectors = [self.df, np.diagonal(self.C)] + ([self.f_full] if self.full or resyncing else [])
        sums = [self.flips, exact, *self.counts_step]
        maxima = [float(move_w), float(move_b), float(self.nonfinite), resync, *self.seconds_step]
        if self.shard is not None:  # the one communication of a sharded step
            vectors, sums, maxima = self.shard.combine(vectors, sums, maxima)
        df, counts = vectors[0], vectors[1]
        self.moved = (maxima[0], maxima[1])
        self.nonfinite = maxima[2] > 0
        self.drift = math.nan
        if self.full:  # rebuilt: the outputs of the weights
            self.f = vectors[2] * self.inv_sqrt_m
        elif resyncing:
            f_weights = vectors[2] * self.inv_sqrt_m
            if not self.nonfinite:
                self.drift = float(np.abs(f_weights - (self.f + df)).max(initial=0.0))
            self.f = f_weights
        else:
            self.f += df
        self.full = False
        self.e = self.f - self.y
        loss = math.nan if self.nonfinite else 0.5 * float(self.e @ self.e)
        values = {
            "loss": loss,
            "active_mean": float(counts.mean()) if counts.size else 0.0,
            "active_max": float(counts.max(initial=0)),
            "flips": int(sums[0]),
            "movement_w": maxima[0],
            "movement_b": maxima[1],
            "fallback": 0,
            "drift": self.drift,
            "movement_recomputed": int(sums[1]),
            "resync_seconds": maxima[3],
        }
        if self.stepped:  # the step's counters, and the hand-over decision (from reduced values: ranks agree)
            step_sums = dict(zip(_STEP_SUMS, (int(v) for v in sums[2:]), strict=True))
            values.update(step_sums)
            values.update(zip(_STEP_SECONDS, maxima[4:], strict=True))
            updated = step_sums["updated"] + step_sums["reexamined"]
            self.busy = self.busy + 1 if updated > FALLBACK_FRACTION * self.scale_width else 0
            self.pending_fallback = self.busy >= FALLBACK_PATIENCE
            self.stepped = False
        values["evaluate_seconds"] = time.perf_counter() - tick
        return values

    def _resync(self) -> float:
        """The outputs of every neuron's weights at the current iterate, from its anchor and without changing it
        (``f_full``); ``evaluate`` rebuilds f from them and records the largest change as drift."""
        tick = time.perf_counter()
        m = self.net.width
        bounds = np.linspace(0, m, self.parts + 1).astype(np.int64)
        bad = np.zeros(self.parts, dtype=np.int64)
        fkern.forward_weights(bounds, self.X, self.net.W, self.net.b, self.net.a, self.E, self.cs, self.start,
                              self.n_act, self.idx, self.eref, self.f_part, bad)
        if bad.any():
            self.nonfinite = True
        self.f_full = self.f_part.sum(axis=0)
        # an anchor and the current row both lie within the largest movement from t = 0 of the initial row
        self._set_slack(2 * self.moved[0], 2 * self.moved[1])
        return time.perf_counter() - tick

    def _bring_up_to_date(self, E: np.ndarray, listed: bool = False) -> np.ndarray:
        r"""Every neuron's weights at the cumulative residual ``E``; returns :math:`\sum_r a_r\,\mathrm{relu}(z_{ri})`
        over this process's neurons (not yet scaled by :math:`m^{-1/2}`). With ``listed`` the anchors stay exact
        (the listed pre-activations are recomputed): training continues from them with its certificates."""
        m = self.net.width
        bounds = np.linspace(0, m, self.parts + 1).astype(np.int64)
        bad = np.zeros(self.parts, dtype=np.int64)
        fkern.bring_up_to_date(bounds, self.X, self.net.W, self.net.b, self.net.a, E, self.cs, self.start,
                               self.n_act, self.n_listed, self.idx, self.zref, self.eref, self.mu, self.K, self.Kw,
                               self.F, self.Dt, self.tau2_of, self.moved2, self.slop, self.xnorm, self.xmax,
                               self.slack, self.S, self.f_part, bad, listed)
        if bad.any():
            self.nonfinite = True
        return self.f_part.sum(axis=0)

    @np.errstate(over="ignore", invalid="ignore")
    @_threaded
    def step(self, lr: float) -> None:
        if self.pending_fallback and self.fallback is None:
            self._hand_over()
        if self.fallback is not None:
            self.fallback.step(lr)
            return
        net = self.net
        self.cs = lr * self.inv_sqrt_m
        tick = time.perf_counter()
        e = self.e
        if self.t % REFRESH_EVERY == 0:  # a new reference residual
            self.epoch += 1
            self.ebar[self.epoch % RING] = e
            self.V[self.epoch % RING] = 0.0
        np.copyto(self.E_prev, self.E)
        self.E += e
        self.S += self.cs * float(np.abs(e).max(initial=0.0))
        for k in range(max(self.epoch - RING + 1, 0), self.epoch + 1):
            self.V[k % RING] += self.cs * float(np.abs(e - self.ebar[k % RING]).max(initial=0.0))
        slot = self.epoch % RING
        T = float(self.t + 1)  # the new iterate
        df = self.df
        fkern.kernel_product(self.G1, self.C, e, -lr / self.scale_width, df, self.parts)  # −η H_A e
        product = time.perf_counter() - tick
        tick = time.perf_counter()
        due = fkern.due_neurons(self.Dt, self.DV, self.ep, T, self.V, self.epoch, self.parts)
        k = len(due)
        if self.undo_W.shape[0] < k:
            self.undo_W = np.empty((max(k, 2 * self.undo_W.shape[0]), net.dim), dtype=net.dtype)
            self.undo_b = np.empty(self.undo_W.shape[0], dtype=net.dtype)
        level = np.zeros(k, dtype=np.uint8)
        ncross = np.zeros(k, dtype=np.int64)
        counters = np.zeros((self.parts, 7), dtype=np.int64)
        bounds = np.linspace(0, k, self.parts + 1).astype(np.int64)
        fkern.check_neurons(due, bounds, self.X, net.W, net.b, self.W0, self.b0, net.a, self.E, self.E_prev,
                            self.ebar[slot], self.cs, self.start, self.n_act, self.n_listed, self.idx, self.init,
                            self.zref, self.eref, self.crossed, self.mu, self.K, self.Kw, self.F, self.Dt, self.DV,
                            self.ep, T, float(self.V[slot]), self.epoch, THETA, HORIZON, self.tau2_of, self.moved2,
                            self.slop, self.dist, self.Sd, self.bdist, self.Sb, self.xnorm, self.xmax, self.slack,
                            self.S, self.undo_W, self.undo_b, level, ncross, counters)
        self.due, self.level = due, level
        check = time.perf_counter() - tick
        tick = time.perf_counter()
        crossed = due[((level == 2) | (level == 4)) & (ncross > 0)]
        none = np.zeros(len(crossed), dtype=np.int64)
        self.flips = fkern.apply_crossings(crossed, self.start, self.n_act, self.n_listed, self.idx, self.init,
                                           self.zref, self.slop, self.crossed, net.a, none, none, none,
                                           none.astype(np.float64), none.astype(np.uint8), self.C, df,
                                           self.inv_sqrt_m, self.flips, self.workers)
        crossing = time.perf_counter() - tick
        tick = time.perf_counter()
        stale = due[level == 3]
        exam_crossings = 0
        if len(stale):
            self.exam_counts[:] = 0
            self.f_part[:] = 0.0
            self.entered = 0
            leave_start, leave_count, leave_idx, leave_z, leave_init = self._examine(stale, diff=True)
            exam_crossings = self.entered + int(leave_count.sum())
            self.flips = fkern.apply_crossings(stale, self.start, self.n_act, self.n_listed, self.idx, self.init,
                                               self.zref, self.slop, self.crossed, net.a, leave_start, leave_count,
                                               leave_idx, leave_z, leave_init, self.C, df, self.inv_sqrt_m,
                                               self.flips, self.workers)
        exam = time.perf_counter() - tick
        sums = counters.sum(axis=0)
        if sums[5] or not np.isfinite(self.S):
            self.nonfinite = True
        self.t += 1
        self.stepped = True
        self.counts_step[:] = (k, sums[0], sums[1], sums[2], sums[3], sums[4] + exam_crossings, sums[6])
        self.seconds_step[:] = (product, check, crossing, exam)

    def _hand_over(self) -> None:
        """Continue with the exact sparse engine from the current iterate (same pattern, initial pattern and
        initial parameters, so flips and movement stay exact)."""
        self._bring_up_to_date(self.E)
        net = self.net
        sparse = _sparse.SparseEngine(net, self.X_user, self.y_user, self.shard)
        sparse.W0[...] = self.W0
        sparse.b0[...] = self.b0
        for lo in range(0, net.width, 1 << 16):  # exact distances from t = 0, in blocks (no width × dim float64 copy)
            moved = net.W[lo : lo + (1 << 16)].astype(np.float64) - self.W0[lo : lo + (1 << 16)]
            sparse.dist[lo : lo + (1 << 16)] = np.sqrt(np.einsum("ij,ij->i", moved, moved))
        sparse.path_w[:] = 0.0
        sparse.movement_w = float(sparse.dist.max(initial=0.0))
        sparse.init_ptr, sparse.init_idx, sparse.init_pairs = self.init_ptr, self.init_idx, self.init_pairs
        sparse.first = False
        sparse.f_part[:] = 0.0
        sparse.count_part[:] = 0
        sparse.counters[:] = 0.0
        sparse.exam_counts[:] = 0
        sparse.reexamined = sparse._examine(np.arange(net.width))
        sparse.evaluate()  # the residual at the current iterate, from the sparse engine's own forward pass
        # (sharded: one more reduction, at the same step on every process: the decision came from reduced values)
        self.fallback = sparse
        # the function-space state is no longer needed
        self.C = np.zeros((0, 0), dtype=np.int32)
        self.idx = np.empty(0, dtype=np.int32)

    @_threaded
    def revert(self) -> None:
        if self.fallback is not None:
            self.fallback.revert()
            return
        # from each anchor back to the previous iterate (an anchor moved by the last step keeps its active set, so
        # the same formula holds); neurons whose active set changed, or whose row overflowed: the kept rows
        self._bring_up_to_date(self.E_prev)
        changed = self.level >= 3
        rows = self.due[changed]
        self.net.W[rows] = self.undo_W[: len(self.due)][changed]
        self.net.b[rows] = self.undo_b[: len(self.due)][changed]
        self.reverted = True

    @_threaded
    def sync(self) -> None:
        """Bring every neuron's weights to the current iterate (``net`` then holds them), e.g. for a callback."""
        if self.fallback is None and not self.reverted and not self.first:
            self._bring_up_to_date(self.E, listed=True)

    @_threaded
    def close(self) -> None:
        if self.fallback is not None:
            self.fallback.close()
            return
        if not self.reverted and not self.first:
            self._bring_up_to_date(self.E)  # no communication: a sharded run may end here after an error

    @_threaded
    def restart(self, W: np.ndarray, b: np.ndarray) -> None:
        """Continue from ``W``, ``b`` (a resumed checkpoint): every neuron is examined there."""
        if self.fallback is not None:
            self.fallback.restart(W, b)
            return
        np.copyto(self.net.W, W)
        np.copyto(self.net.b, b)
        self._set_slack()
        self._rebuild()
