"""Compiled loops of the exact sparse GD (see ``sparsentk._sparse``). Neuron-major, one thread per neuron range.

Candidate pairs are stored as a CSR structure over neurons: ``ptr`` (width + 1), ``idx`` (input of each pair),
``init`` (pair active at t = 0) and ``act`` (pair active at the current iterate). Reductions over inputs go to
per-thread buffers that are summed in a fixed order, so results depend only on the thread count.
"""

from __future__ import annotations

import numba
import numpy as np

_FAST = {"reassoc", "contract"}


@numba.njit(cache=True)
def split_by_work(ptr, parts):  # pragma: no cover - compiled
    """Contiguous neuron ranges with about equal candidate counts (plus one unit per neuron)."""
    m = ptr.shape[0] - 1
    total = ptr[m] + m
    bounds = np.empty(parts + 1, dtype=np.int64)
    bounds[0] = 0
    r = 0
    for p in range(1, parts):
        target = total * p // parts
        while r < m and ptr[r] + r < target:
            r += 1
        bounds[p] = r
    bounds[parts] = m
    return bounds


@numba.njit(inline="always")
def _mark(q, i, z, ar, act, init, f, c):  # pragma: no cover - compiled
    """Record pair q (input i, pre-activation z): returns (1, init[q]) when active, (0, 0) otherwise."""
    if z >= 0:
        act[q] = 1
        f[i] += ar * np.float64(z)
        c[i] += 1
        return 1, np.int64(init[q])
    act[q] = 0
    return 0, 0


@numba.njit(parallel=True, fastmath=_FAST, cache=True)
def forward(X, W, b, a, ptr, idx, init, act, bounds, f_part, count_part, zero):  # pragma: no cover - compiled
    """Pre-activations of candidate pairs: sets ``act``, accumulates a_r relu(z) and active counts per input.

    Dot products accumulate in the network's dtype (``zero`` is its 0), like the dense GEMM, four candidates at
    a time: the row gathers, not the arithmetic, bound this loop, and four independent ones overlap.
    Returns (active pairs, active pairs that were active at t = 0).
    """
    parts = bounds.shape[0] - 1
    d = X.shape[1]
    n_act = np.zeros(parts, dtype=np.int64)
    n_both = np.zeros(parts, dtype=np.int64)
    for p in numba.prange(parts):
        f = f_part[p]
        c = count_part[p]
        f[:] = 0.0
        c[:] = 0
        na = 0
        nb = 0
        for r in range(bounds[p], bounds[p + 1]):
            w = W[r]
            br = b[r]
            ar = np.float64(a[r])
            q = ptr[r]
            end = ptr[r + 1]
            while q + 4 <= end:
                i0, i1, i2, i3 = idx[q], idx[q + 1], idx[q + 2], idx[q + 3]
                x0, x1, x2, x3 = X[i0], X[i1], X[i2], X[i3]
                s0 = s1 = s2 = s3 = zero
                for k in range(d):
                    wk = w[k]
                    s0 += x0[k] * wk
                    s1 += x1[k] * wk
                    s2 += x2[k] * wk
                    s3 += x3[k] * wk
                for u, i, s in ((0, i0, s0), (1, i1, s1), (2, i2, s2), (3, i3, s3)):
                    da, db = _mark(q + u, i, s - br, ar, act, init, f, c)
                    na += da
                    nb += db
                q += 4
            while q < end:
                i = idx[q]
                x = X[i]
                s = zero
                for k in range(d):
                    s += x[k] * w[k]
                da, db = _mark(q, i, s - br, ar, act, init, f, c)
                na += da
                nb += db
                q += 1
        n_act[p] = na
        n_both[p] = nb
    return n_act.sum(), n_both.sum()


@numba.njit(parallel=True, fastmath=_FAST, cache=True)
def backward_update(X, W, b, a, ptr, idx, act, residual, step, W0, b0, Ws, bs, xnorm, moved, dist_w, dist_b,
                    touched, old_W, old_b, bounds):  # pragma: no cover - compiled
    r"""One GD step on the neurons with active pairs: w_r -= step·a_r Σ_i r_i x_i, b_r += step·a_r Σ_i r_i.

    Returns the summed movement ‖Δw_r‖·max‖x‖ + |Δb_r| of this step over the neurons that moved.

    Saves the old rows (for revert) in ``old_W``/``old_b`` and flags the neuron in ``touched``, sets the certificate
    movement ``moved`` = ‖w_r − w_r(s)‖·max‖x‖ + |b_r − b_r(s)| since the last examination (rows ``Ws``, ``bs``) and
    the distances from initialization ``dist_w``, ``dist_b``.
    """
    parts = bounds.shape[0] - 1
    d = X.shape[1]
    step_moves = np.zeros(parts)
    for p in numba.prange(parts):
        g = np.zeros(d, dtype=W.dtype)
        rows = np.empty(X.shape[0], dtype=np.int64)  # active inputs of the current neuron
        for r in range(bounds[p], bounds[p + 1]):
            touched[r] = 0
            count = 0
            for q in range(ptr[r], ptr[r + 1]):
                if act[q]:
                    rows[count] = idx[q]
                    count += 1
            if count == 0:
                continue
            g[:] = 0.0
            gb = 0.0
            u = 0
            while u + 4 <= count:  # four gathered rows at a time, as in the forward pass
                i0, i1, i2, i3 = rows[u], rows[u + 1], rows[u + 2], rows[u + 3]
                r0, r1, r2, r3 = residual[i0], residual[i1], residual[i2], residual[i3]
                x0, x1, x2, x3 = X[i0], X[i1], X[i2], X[i3]
                gb += np.float64(r0) + np.float64(r1) + np.float64(r2) + np.float64(r3)
                for k in range(d):
                    g[k] += r0 * x0[k] + r1 * x1[k] + r2 * x2[k] + r3 * x3[k]
                u += 4
            while u < count:
                i = rows[u]
                ri = residual[i]
                gb += np.float64(ri)
                x = X[i]
                for k in range(d):
                    g[k] += ri * x[k]
                u += 1
            touched[r] = 1
            coef = step * np.float64(a[r])
            old_b[r] = b[r]
            anchor2 = 0.0
            dist2 = 0.0
            step2 = 0.0
            for k in range(d):
                old = W[r, k]
                old_W[r, k] = old
                W[r, k] = np.float64(old) - coef * np.float64(g[k])
                new = np.float64(W[r, k])  # rounded to W's dtype
                e = new - np.float64(old)
                step2 += e * e
                e = new - np.float64(Ws[r, k])
                anchor2 += e * e
                e = new - np.float64(W0[r, k])
                dist2 += e * e
            oldb = np.float64(b[r])
            b[r] = oldb + coef * gb
            newb = np.float64(b[r])
            moved[r] = np.sqrt(anchor2) * xnorm + abs(newb - np.float64(bs[r]))
            step_moves[p] += np.sqrt(step2) * xnorm + abs(newb - oldb)
            dist_w[r] = np.sqrt(dist2)
            dist_b[r] = abs(newb - np.float64(b0[r]))
    return step_moves.sum()


@numba.njit(parallel=True, cache=True)
def restore(W, b, touched, old_W, old_b):  # pragma: no cover - compiled
    """Undo the last ``backward_update``."""
    for r in numba.prange(W.shape[0]):
        if touched[r]:
            W[r, :] = old_W[r, :]
            b[r] = old_b[r]


@numba.njit(parallel=True, cache=True)
def select_candidates(Z, margin, counts):  # pragma: no cover - compiled
    """Count, per row of Z (neuron × inputs, already minus the bias), the inputs with z ≥ −margin."""
    for j in numba.prange(Z.shape[0]):
        c = 0
        for i in range(Z.shape[1]):
            if Z[j, i] >= -margin:
                c += 1
        counts[j] = c


@numba.njit(parallel=True, cache=True)
def fill_candidates(Z, margin, offsets, out_idx):  # pragma: no cover - compiled
    for j in numba.prange(Z.shape[0]):
        q = offsets[j]
        for i in range(Z.shape[1]):
            if Z[j, i] >= -margin:
                out_idx[q] = i
                q += 1


@numba.njit(parallel=True, cache=True)
def merge_lists(ptr, idx, init, slot, new_ptr, new_idx, init_ptr, init_idx):  # pragma: no cover - compiled
    """A new CSR where neuron r keeps its list when ``slot[r] < 0`` and takes list ``slot[r]`` of the new CSR
    otherwise; the ``init`` flags of new pairs are looked up in the initial active pattern (both sorted)."""
    m = ptr.shape[0] - 1
    out_ptr = np.empty(m + 1, dtype=np.int64)
    out_ptr[0] = 0
    for r in range(m):
        s = slot[r]
        size = ptr[r + 1] - ptr[r] if s < 0 else new_ptr[s + 1] - new_ptr[s]
        out_ptr[r + 1] = out_ptr[r] + size
    out_idx = np.empty(out_ptr[m], dtype=idx.dtype)
    out_init = np.zeros(out_ptr[m], dtype=np.uint8)
    for r in numba.prange(m):
        s = slot[r]
        o = out_ptr[r]
        if s < 0:
            for q in range(ptr[r], ptr[r + 1]):
                out_idx[o] = idx[q]
                out_init[o] = init[q]
                o += 1
        else:
            u = init_ptr[r]
            u_end = init_ptr[r + 1]
            for q in range(new_ptr[s], new_ptr[s + 1]):
                i = new_idx[q]
                while u < u_end and init_idx[u] < i:
                    u += 1
                out_idx[o] = i
                out_init[o] = 1 if (u < u_end and init_idx[u] == i) else 0
                o += 1
    return out_ptr, out_idx, out_init


@numba.njit(cache=True)
def active_lists(ptr, idx, act):  # pragma: no cover - compiled
    """The CSR of active pairs (sorted per neuron) from the candidate CSR and its ``act`` flags."""
    m = ptr.shape[0] - 1
    out_ptr = np.empty(m + 1, dtype=np.int64)
    out_ptr[0] = 0
    for r in range(m):
        c = 0
        for q in range(ptr[r], ptr[r + 1]):
            c += act[q]
        out_ptr[r + 1] = out_ptr[r] + c
    out_idx = np.empty(out_ptr[m], dtype=idx.dtype)
    o = 0
    for r in range(m):
        for q in range(ptr[r], ptr[r + 1]):
            if act[q]:
                out_idx[o] = idx[q]
                o += 1
    return out_ptr, out_idx
