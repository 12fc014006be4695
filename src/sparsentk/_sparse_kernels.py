"""Compiled loops of the exact sparse GD (see ``sparsentk._sparse``). Neuron-major, one thread per neuron range.

Each neuron ``r`` owns a slot ``[start[r], start[r] + cap[r])`` of a pool of pairs: ``idx`` (input) and ``init``
(pair active at t = 0). The slot holds the neuron's *listed* inputs (``n_listed[r]`` of them, margin ≥ −τ₂ at its
last full examination); the first ``n_cand[r]`` are its *candidates* (margin ≥ −τ₁ at its last refresh), the only
pairs whose pre-activations a step computes, and the first ``n_act[r]`` of those are active at the current iterate:
a forward pass partitions the candidates as it marks them, so the update reads its active inputs directly.
Reductions over inputs go to per-part buffers summed in a fixed order, so results depend only on the thread count.
"""

from __future__ import annotations

import numba
import numpy as np

_FAST = {"reassoc", "contract"}


@numba.njit(cache=True)
def split_by_work(n_cand, parts, overhead):  # pragma: no cover - compiled
    """Contiguous neuron ranges with about equal work (candidates plus ``overhead`` per neuron)."""
    m = n_cand.shape[0]
    total = 0
    for r in range(m):
        total += n_cand[r] + overhead
    bounds = np.empty(parts + 1, dtype=np.int64)
    bounds[0] = 0
    r = 0
    done = 0
    for p in range(1, parts):
        target = total * p // parts
        while r < m and done < target:
            done += n_cand[r] + overhead
            r += 1
        bounds[p] = r
    bounds[parts] = m
    return bounds


@numba.njit(inline="always", fastmath=_FAST)
def _dot4(X, w, i0, i1, i2, i3, zero):  # pragma: no cover - compiled
    """w·x_i for four inputs, in the network's dtype (``zero`` is its 0): the row gathers, not the arithmetic,
    bound these loops, and four independent ones overlap. Rows are indexed in place (a row view would count
    references to X atomically, from every thread)."""
    s0 = s1 = s2 = s3 = zero
    for k in range(X.shape[1]):
        wk = w[k]
        s0 += X[i0, k] * wk
        s1 += X[i1, k] * wk
        s2 += X[i2, k] * wk
        s3 += X[i3, k] * wk
    return s0, s1, s2, s3


@numba.njit(inline="always", fastmath=_FAST)
def _dot(X, w, i, zero):  # pragma: no cover - compiled
    s = zero
    for k in range(X.shape[1]):
        s += X[i, k] * w[k]
    return s


@numba.njit(inline="always", fastmath=_FAST)
def _mark(q, front, z, ar, idx, init, f, c):  # pragma: no cover - compiled
    """Record pair q (pre-activation z) and move it to ``front`` when active (a branch-free Lomuto step: every
    pair in [front, q) is inactive). Adds a_r relu(z) to f and the activation to c at its input. Returns
    (active, active and active at t = 0)."""
    on = z >= 0
    i = idx[q]
    flag = init[q]
    f[i] += ar * (np.float64(z) if on else 0.0)
    c[i] += on
    idx[q] = idx[front]
    init[q] = init[front]
    idx[front] = i
    init[front] = flag
    return np.int64(on), np.int64(on & (flag != 0))


@numba.njit(inline="always", fastmath=_FAST)
def _forward(X, w, br, ar, idx, init, lo, hi, f, c, zero):  # pragma: no cover - compiled
    """Pre-activations of the candidates [lo, hi) at row w, bias br, partitioned active first as they come.
    Returns (active, of which active at t = 0)."""
    front = lo
    nb = 0
    q = lo
    while q + 4 <= hi:
        s0, s1, s2, s3 = _dot4(X, w, idx[q], idx[q + 1], idx[q + 2], idx[q + 3], zero)
        da, db = _mark(q, front, s0 - br, ar, idx, init, f, c)
        front += da
        nb += db
        da, db = _mark(q + 1, front, s1 - br, ar, idx, init, f, c)
        front += da
        nb += db
        da, db = _mark(q + 2, front, s2 - br, ar, idx, init, f, c)
        front += da
        nb += db
        da, db = _mark(q + 3, front, s3 - br, ar, idx, init, f, c)
        front += da
        nb += db
        q += 4
    while q < hi:
        da, db = _mark(q, front, _dot(X, w, idx[q], zero) - br, ar, idx, init, f, c)
        front += da
        nb += db
        q += 1
    return front - lo, nb


@numba.njit(inline="always", fastmath=_FAST)
def _refresh(X, w, br, ar, idx, init, lo, hi, f, c, z, zero, tau):  # pragma: no cover - compiled
    """Pre-activations of every listed pair [lo, hi): those ≥ −tau become the candidates (moved to the front),
    then partitioned active first. Returns (active, of which active at t = 0, candidates)."""
    q = lo
    while q + 4 <= hi:
        z[q - lo], z[q + 1 - lo], z[q + 2 - lo], z[q + 3 - lo] = _dot4(X, w, idx[q], idx[q + 1], idx[q + 2],
                                                                         idx[q + 3], zero)
        q += 4
    while q < hi:
        z[q - lo] = _dot(X, w, idx[q], zero)
        q += 1
    front = lo
    for q in range(lo, hi):
        if z[q - lo] - br >= -tau:
            idx[q], idx[front] = idx[front], idx[q]
            init[q], init[front] = init[front], init[q]
            z[q - lo], z[front - lo] = z[front - lo], z[q - lo]
            front += 1
    active = lo
    nb = 0
    for q in range(lo, front):
        da, db = _mark(q, active, z[q - lo] - br, ar, idx, init, f, c)
        active += da
        nb += db
    return active - lo, nb, front - lo


@numba.njit(fastmath=_FAST, cache=True)
def _step_part(p, X, W, b, W_next, b_next, a, residual, step, start, n_act, n_cand, n_listed, idx, init, tau1,
               tau2, moved1, moved2, W_exam, b_exam, path_w, xnorm, slack, tau1_new, stale, bounds, f_part,
               count_part, zero, counters):  # pragma: no cover - compiled
    """The neurons of part p of ``step_and_forward``."""
    n, d = X.shape
    f = f_part[p]
    c = count_part[p]
    for i in range(n):
        f[i] = 0.0
        c[i] = 0
    g = np.zeros(d, dtype=W.dtype)
    wn = np.empty(d, dtype=W.dtype)
    z = np.empty(n, dtype=W.dtype)
    na = 0
    nb = 0
    moves = 0.0
    moving = 0
    refreshed = 0
    computed = 0
    nonfinite = 0
    for r in range(bounds[p], bounds[p + 1]):
        lo = start[r]
        count = n_act[r]
        if count == 0:  # no gradient: the neuron keeps its row and its (empty) active set
            for k in range(d):
                W_next[r, k] = W[r, k]
            b_next[r] = b[r]
            continue
        # backward: g = Σ ρ_i x_i over the active pairs, four gathered rows at a time
        for k in range(d):
            g[k] = 0.0
        gb = 0.0
        q = lo
        hi = lo + count
        while q + 4 <= hi:
            i0, i1, i2, i3 = idx[q], idx[q + 1], idx[q + 2], idx[q + 3]
            r0, r1, r2, r3 = residual[i0], residual[i1], residual[i2], residual[i3]
            gb += np.float64(r0) + np.float64(r1) + np.float64(r2) + np.float64(r3)
            for k in range(d):
                g[k] += r0 * X[i0, k] + r1 * X[i1, k] + r2 * X[i2, k] + r3 * X[i3, k]
            q += 4
        while q < hi:
            i = idx[q]
            ri = residual[i]
            gb += np.float64(ri)
            for k in range(d):
                g[k] += ri * X[i, k]
            q += 1
        coef = step * np.float64(a[r])
        for k in range(d):
            wn[k] = np.float64(W[r, k]) - coef * np.float64(g[k])
        step2 = 0.0
        for k in range(d):
            e = np.float64(wn[k]) - np.float64(W[r, k])  # the rounded step
            step2 += e * e
            W_next[r, k] = wn[k]
        oldb = np.float64(b[r])
        b_next[r] = oldb + coef * gb
        br = b_next[r]
        newb = np.float64(br)
        sw = np.sqrt(step2)
        move = sw * xnorm + abs(newb - oldb)
        if not np.isfinite(move):  # an overflowed step: the loss at the new iterate is not finite
            nonfinite += 1
            continue
        path_w[r] += sw
        moved1[r] += move
        moved2[r] += move
        moves += move
        moving += 1
        ar = np.float64(a[r])
        if not moved2[r] + slack < tau2[r]:
            dist2 = 0.0
            for k in range(d):
                e = np.float64(wn[k]) - np.float64(W_exam[r, k])
                dist2 += e * e
            moved2[r] = np.sqrt(dist2) * xnorm + abs(newb - np.float64(b_exam[r]))
            if not moved2[r] + slack < tau2[r]:
                stale[r] = 1
                continue
        if not moved1[r] + slack < tau1[r]:  # refresh the candidates from the listed pairs
            hi2 = lo + n_listed[r]
            n_act[r], db, n_cand[r] = _refresh(X, wn, br, ar, idx, init, lo, hi2, f, c, z, zero, tau1_new)
            computed += hi2 - lo
            tau1[r] = tau1_new
            moved1[r] = 0.0
            refreshed += 1
        else:
            n_act[r], db = _forward(X, wn, br, ar, idx, init, lo, lo + n_cand[r], f, c, zero)
            computed += n_cand[r]
        na += n_act[r]
        nb += db
    counters[p, 0] = na
    counters[p, 1] = nb
    counters[p, 2] = moves
    counters[p, 3] = moving
    counters[p, 4] = refreshed
    counters[p, 5] = computed
    counters[p, 6] = nonfinite


@numba.njit(parallel=True, fastmath=_FAST, cache=True)
def step_and_forward(X, W, b, W_next, b_next, a, residual, step, start, n_act, n_cand, n_listed, idx, init, tau1,
                     tau2, moved1, moved2, W_exam, b_exam, path_w, xnorm, slack, tau1_new, stale, bounds, f_part,
                     count_part, zero, counters):  # pragma: no cover - compiled
    r"""One GD step, neuron by neuron, fused with the forward pass at the new iterate.

    For neuron r: :math:`w_r \leftarrow w_r - \text{step}\, a_r \sum_{i \in A_r} \rho_i x_i`,
    :math:`b_r \leftarrow b_r + \text{step}\, a_r \sum_{i \in A_r} \rho_i` over its active pairs :math:`A_r`
    (written to ``W_next``, ``b_next``; the old rows stay for a revert). The movement
    :math:`\|\Delta w_r\|\max_i\|x_i\| + |\Delta b_r|` is added to the certificate paths ``moved1``, ``moved2``.
    Then, at the new iterate:

    - ``moved2 ≥ tau2``: the exact distance to the row of the last full examination decides; if it is still
      ≥ ``tau2`` the neuron is flagged ``stale`` (examined against every input afterwards, by BLAS);
    - ``moved1 ≥ tau1``: pre-activations of every listed pair, whose candidates become those ≥ −``tau1_new``;
    - otherwise: pre-activations of the candidates only.

    ``counters[p]`` receives (active pairs, of which active at t = 0, summed movement, moving neurons, refreshed
    neurons, pairs computed, neurons with a non-finite parameter) of part p. Each part runs in a plain compiled
    function: LLVM optimizes its loops better there than in the parallel loop's body.
    """
    parts = bounds.shape[0] - 1
    counters[:, :] = 0.0
    for p in numba.prange(parts):
        _step_part(p, X, W, b, W_next, b_next, a, residual, step, start, n_act, n_cand, n_listed, idx, init, tau1,
                   tau2, moved1, moved2, W_exam, b_exam, path_w, xnorm, slack, tau1_new, stale, bounds, f_part,
                   count_part, zero, counters)


@numba.njit(parallel=True, cache=True)
def list_inputs(Z, b, tau1, tau2, listed, counts):  # pragma: no cover - compiled
    """Per row j of Z (examined neurons × inputs, before the bias ``b[j]``): the inputs with margin
    z = Z[j, i] − b[j] ≥ −tau2, in order, into ``listed[j]`` (without branching: few are), and the counts
    ``counts[j]`` = (margin ≥ −tau1, margin ≥ −tau2, margin ≥ 0)."""
    for j in numba.prange(Z.shape[0]):
        br = b[j]
        c2 = 0
        for i in range(Z.shape[1]):
            listed[j, c2] = i
            c2 += (Z[j, i] - br) >= -tau2
        c1 = 0
        c0 = 0
        for u in range(c2):
            zu = Z[j, listed[j, u]] - br
            c1 += zu >= -tau1
            c0 += zu >= 0
        counts[j, 0] = c1
        counts[j, 1] = c2
        counts[j, 2] = c0


@numba.njit(cache=True)
def place(neurons, counts, start, cap, used, pool_size):  # pragma: no cover - compiled
    """Slots for the examined ``neurons``: a list that outgrows its slot moves to the end of the pool with room to
    grow by half. Returns (new end of the used pool, pool size needed, pairs given up by moved lists)."""
    freed = 0
    for j in range(neurons.shape[0]):
        r = neurons[j]
        size = counts[j, 1]
        if size > cap[r]:
            freed += cap[r]
            start[r] = used
            cap[r] = size + size // 2 + 4
            used += cap[r]
    return used, max(used, pool_size), freed


@numba.njit(parallel=True, cache=True)
def absorb_exam(Z, b, listed, neurons, counts, tau1, a, start, n_act, n_cand, n_listed, idx, init, init_ptr,
                init_idx, first, groups, f_part, count_part, out):  # pragma: no cover - compiled
    """Fill the slots of the examined ``neurons`` from their listed inputs (``list_inputs``; Z rows in order,
    before the biases ``b``): active pairs, then the other candidates (margin ≥ −tau1), then the other listed
    inputs, each in input order. Adds the forward contributions of active pairs to ``f_part``/``count_part``
    (``groups`` splits the rows among parts) and their totals to ``out[p]`` = (active pairs, of which active at
    t = 0).

    ``init`` flags come from the initial active lists (CSR ``init_ptr``/``init_idx``, sorted), or, when ``first``,
    are the current activations.
    """
    parts = groups.shape[0] - 1
    for p in numba.prange(parts):
        f = f_part[p]
        c = count_part[p]
        na = 0
        nb = 0
        for j in range(groups[p], groups[p + 1]):
            r = neurons[j]
            br = b[j]
            on = start[r]
            cand = start[r] + counts[j, 2]
            other = start[r] + counts[j, 0]
            ar = np.float64(a[r])
            u = init_ptr[r] if not first else 0
            u_end = init_ptr[r + 1] if not first else 0
            for v in range(counts[j, 1]):
                i = listed[j, v]
                zi = Z[j, i] - br
                if first:
                    flag = np.uint8(1) if zi >= 0 else np.uint8(0)
                else:
                    while u < u_end and init_idx[u] < i:
                        u += 1
                    flag = np.uint8(1) if (u < u_end and init_idx[u] == i) else np.uint8(0)
                if zi >= 0:
                    q = on
                    on += 1
                    f[i] += ar * np.float64(zi)
                    c[i] += 1
                    nb += np.int64(flag)
                elif zi >= -tau1:
                    q = cand
                    cand += 1
                else:
                    q = other
                    other += 1
                idx[q] = i
                init[q] = flag
            n_act[r] = counts[j, 2]
            n_cand[r] = counts[j, 0]
            n_listed[r] = counts[j, 1]
            na += counts[j, 2]
        out[p, 0] += na
        out[p, 1] += nb


@numba.njit(parallel=True, cache=True)
def compact(start, n_listed, idx, init, new_start, new_idx, new_init):  # pragma: no cover - compiled
    """Copy every slot to a fresh pool laid out neuron by neuron (``new_start`` given)."""
    for r in numba.prange(start.shape[0]):
        s, o = start[r], new_start[r]
        for q in range(n_listed[r]):
            new_idx[o + q] = idx[s + q]
            new_init[o + q] = init[s + q]


@numba.njit(parallel=True, cache=True)
def active_lists(start, n_act, idx):  # pragma: no cover - compiled
    """The CSR of the active pairs (the first ``n_act[r]`` of each slot), sorted per neuron."""
    m = start.shape[0]
    out_ptr = np.zeros(m + 1, dtype=np.int64)
    out_ptr[1:] = np.cumsum(n_act)
    out_idx = np.empty(out_ptr[m], dtype=idx.dtype)
    for r in numba.prange(m):
        o = out_ptr[r]
        out_idx[o : o + n_act[r]] = idx[start[r] : start[r] + n_act[r]]
        out_idx[o : o + n_act[r]].sort()
    return out_ptr, out_idx


@numba.njit(parallel=True, cache=True)
def exact_movement(W, W0, dist, path, bounds):  # pragma: no cover - compiled
    r""":math:`\max_r \|w_r - w_r(0)\|`, recomputing only the neurons that could attain it.

    ``dist[r]`` is the exact distance at its last computation and ``path[r]`` the length of the steps since, so
    the distance lies in ``dist ± path``: only neurons whose upper end reaches the largest lower end are recomputed
    (their ``path`` reset to 0). Returns the maximum.
    """
    parts = bounds.shape[0] - 1
    low = np.zeros(parts)
    for p in numba.prange(parts):
        best = 0.0
        for r in range(bounds[p], bounds[p + 1]):
            best = max(best, dist[r] - path[r])
        low[p] = best
    floor = low.max() * (1.0 - 1e-12)
    high = np.zeros(parts)
    for p in numba.prange(parts):
        best = 0.0
        for r in range(bounds[p], bounds[p + 1]):
            if dist[r] + path[r] >= floor and path[r] > 0:
                s = 0.0
                for k in range(W.shape[1]):
                    e = np.float64(W[r, k]) - np.float64(W0[r, k])
                    s += e * e
                dist[r] = np.sqrt(s)
                path[r] = 0.0
            if dist[r] + path[r] >= floor:
                best = max(best, dist[r])
        high[p] = best
    return high.max()
