"""Compiled loops of exact GD in function space (see ``sparsentk._function_space``).

Pool layout (shared with ``sparsentk._sparse_kernels``, whose examination loops fill it): neuron ``r`` owns the slot
``[start[r], start[r] + n_listed[r])`` of the pool arrays; its first ``n_act[r]`` pairs are its active inputs
:math:`A_r`, the rest the inactive inputs listed by its last examination. Beside ``idx`` (input) and ``init``
(active at t = 0) this engine keeps per pair ``zref`` (pre-activation at the neuron's anchor, in float64), ``eref``
(the cumulative residual :math:`E_i` at the anchor, for active pairs) and ``crossed`` (1: entered :math:`A_r` at
this step, 2: left it).

Every loop over neurons takes contiguous ranges ``bounds`` (one per part); the only writes shared between neurons
(``C``, ``H``, ``f``) happen in the serial :func:`apply_crossings`, in neuron order, so the results do not depend
on the thread count.
"""

from __future__ import annotations

import numba
import numpy as np

INF = np.inf
#: Largest active set whose ‖X_A‖_op is bounded by Gershgorin's theorem on G_AA (|A|² lookups); Frobenius above.
GERSHGORIN_MAX = 48
#: Dot products may be reassociated (vectorized), as in ``sparsentk._sparse_kernels``: results agree up to rounding.
_FAST = {"reassoc", "contract"}


@numba.njit(parallel=True, cache=True)
def due_neurons(D, S, parts):  # pragma: no cover - compiled
    """The neurons (sorted) whose deadline ``D[r]`` has been reached by the certified path length ``S``."""
    m = D.shape[0]
    counts = np.zeros(parts, dtype=np.int64)
    for p in numba.prange(parts):
        c = 0
        for r in range(m * p // parts, m * (p + 1) // parts):
            c += D[r] <= S
        counts[p] = c
    offsets = np.zeros(parts + 1, dtype=np.int64)
    for p in range(parts):
        offsets[p + 1] = offsets[p] + counts[p]
    out = np.empty(offsets[parts], dtype=np.int64)
    for p in numba.prange(parts):
        o = offsets[p]
        for r in range(m * p // parts, m * (p + 1) // parts):
            if D[r] <= S:
                out[o] = r
                o += 1
    return out


@numba.njit(inline="always")
def _anchor(r, lo, na, nl, idx, zref, eref, E, xnorm, xmax, tau2, moved2, slop, mu, K, Kw, F, D, S, slack, G1,
            changed):  # pragma: no cover - compiled
    r"""Certificate of neuron r at its anchor: nearest margin μ_r (listed pairs exactly, the others through the last
    examination's τ₂ less the movement since), σ_r = ``F[r]`` ≥ :math:`\|X_{A_r}\|_{op}` (recomputed when its
    active set ``changed``: the smaller of the Frobenius norm and, for at most ``GERSHGORIN_MAX`` active inputs,
    the Gershgorin bound :math:`\max_i \sum_{k\in A_r}|G_{ik}|` on :math:`\lambda_{\max}(X_{A_r}X_{A_r}^\top)`),
    the per-step rates :math:`K_w = \min(\sum_{A_r}\|x_i\|, \sigma_r\sqrt{|A_r|})` (weights) and
    :math:`K_r = |A_r| + \max_j\|x_j\| K_w` (pre-activations), and the deadline D_r in units of S."""
    near = tau2[r] - moved2[r]
    for q in range(lo, lo + nl):
        z = abs(zref[q]) - slop[r]
        if z < near:
            near = z
    sx = 0.0
    sx2 = 0.0
    for q in range(lo, lo + na):
        i = idx[q]
        eref[q] = E[i]
        sx += xnorm[i]
        sx2 += xnorm[i] * xnorm[i]
    if changed:
        sig2 = sx2
        if na <= GERSHGORIN_MAX:
            g = 0.0
            for q in range(lo, lo + na):
                i = idx[q]
                row = 0.0
                for t in range(lo, lo + na):
                    row += abs(G1[i, idx[t]] - 1.0)
                g = max(g, row)
            sig2 = min(sig2, g * (1.0 + 1e-9))
        F[r] = np.sqrt(sig2)
    mu[r] = near
    Kw[r] = min(sx, F[r] * np.sqrt(na))
    K[r] = na + xmax * Kw[r]
    if K[r] > 0:
        D[r] = S + (near - slack) / K[r]
    else:
        D[r] = INF  # no active pair: no gradient, the neuron never moves


@numba.njit(inline="always", fastmath=_FAST)
def _displacement(lo, na, idx, E, eref, X, out):  # pragma: no cover - compiled
    r"""``out`` ← :math:`X_{A_r}^\top (E - E_{ref})` over one neuron's active slots ``lo … lo + na``; returns
    :math:`\sum (E - E_{ref})` (its weight and bias moves are ``−c`` and ``+c`` times these)."""
    d = X.shape[1]
    for j in range(d):
        out[j] = 0.0
    total = 0.0
    for q in range(lo, lo + na):
        i = idx[q]
        de = E[i] - eref[q]
        total += de
        for j in range(d):
            out[j] += de * np.float64(X[i, j])
    return total


@numba.njit(inline="always", fastmath=_FAST)
def _keep_undo(k, lo, na, idx, eref, E_prev, X, wsave, bsave, coef, u, undo_W, undo_b):  # pragma: no cover
    """The row of neuron ``due[k]`` at the previous iterate, :math:`w_r(s_r) - c a_r X_{A_r}^\top(E(t) - E(s_r))`,
    into ``undo_W[k]`` (for a revert), from its saved anchor row and its active set at the anchor."""
    ub = _displacement(lo, na, idx, E_prev, eref, X, u)
    for j in range(X.shape[1]):
        undo_W[k, j] = wsave[j] - coef * u[j]
    undo_b[k] = bsave + coef * ub


@numba.njit(fastmath=_FAST, cache=True)
def _check_part(p, due, bounds, X, W, b, W0, b0, a, E, E_prev, cs, start, n_act, n_listed, idx, init, zref, eref,
                crossed, mu, K, Kw, F, D, tau2, moved2, slop, dist, Sd, bdist, Sb, xnorm, xmax, slack, S, undo_W,
                undo_b, level, ncross, counters, G1):  # pragma: no cover - compiled
    d = X.shape[1]
    v = np.empty(d, dtype=W.dtype)  # the network's dtype: float32 networks gather and add in float32
    u = np.empty(d)
    wn = np.empty(d, dtype=W.dtype)
    wsave = np.empty(d)
    cast = np.empty(1, dtype=W.dtype)
    n0 = n1 = n2 = n3 = n_part = 0
    crossings = 0
    nonfinite = 0
    for k in range(bounds[p], bounds[p + 1]):
        r = due[k]
        lo = start[r]
        na = n_act[r]
        nl = n_listed[r]
        level[k] = 0
        ncross[k] = 0
        if na == 0:
            D[r] = INF
            continue
        # level 0: the exact bias movement and the norm of the residual increments, from E alone
        beta = 0.0
        s2 = 0.0
        for q in range(lo, lo + na):
            de = E[idx[q]] - eref[q]
            beta += de
            s2 += de * de
        move = cs * (abs(beta) + F[r] * np.sqrt(s2) * xmax)
        if move + slack < mu[r]:
            D[r] = S + (mu[r] - move - slack) / K[r]
            n0 += 1
            continue
        # level 1: the exact displacement v = X_Aᵀ ΔE
        for j in range(d):
            v[j] = 0.0
        for q in range(lo, lo + na):
            i = idx[q]
            cast[0] = E[i] - eref[q]
            de = cast[0]
            for j in range(d):
                v[j] += de * X[i, j]
        vv = 0.0
        for j in range(d):
            vv += np.float64(v[j]) * np.float64(v[j])
        move = cs * (abs(beta) + np.sqrt(vv) * xmax)
        if move + slack < mu[r]:
            D[r] = S + (mu[r] - move - slack) / K[r]
            n1 += 1
            level[k] = 1
            continue
        # level 2: bring the neuron up to date. The row at the previous iterate is kept (``undo_W``) when the
        # neuron's active set changes at this step or its row overflows; otherwise a revert finds it from the new
        # anchor.
        coef = cs * np.float64(a[r])
        step2 = 0.0
        dd = 0.0
        for j in range(d):
            wold = np.float64(W[r, j])
            wsave[j] = wold
            W[r, j] = wold - coef * np.float64(v[j])
            wn[j] = W[r, j]  # rounded to the network's dtype
            wnew = np.float64(wn[j])
            step2 += (wnew - wold) * (wnew - wold)
            e0 = wnew - np.float64(W0[r, j])
            dd += e0 * e0
        bold = np.float64(b[r])
        b[r] = bold + coef * beta
        bnew = np.float64(b[r])
        mv = np.sqrt(step2) * xmax + abs(bnew - bold)
        level[k] = 2
        if not np.isfinite(mv):
            nonfinite += 1
            mv = INF
            _keep_undo(k, lo, na, idx, eref, E_prev, X, wsave, bold, coef, u, undo_W, undo_b)
            level[k] = 4
        moved2[r] += mv
        dist[r] = np.sqrt(dd)
        Sd[r] = S
        bdist[r] = abs(bnew - np.float64(b0[r]))
        Sb[r] = S
        if not moved2[r] + slack < tau2[r]:  # the examination's certificate has run out: examined afterwards
            if level[k] != 4:
                _keep_undo(k, lo, na, idx, eref, E_prev, X, wsave, bold, coef, u, undo_W, undo_b)
            level[k] = 3
            n3 += 1
            continue
        n2 += 1
        # the listed pairs that may have crossed: |zref| − slop ≤ movement (zref of a pair last computed exactly
        # is kept inflated by the neuron's slop at that time, with the sign of its state, so |zref| − slop bounds
        # every listed margin and the sign partitions the slot)
        newslop = slop[r] + move
        reach = newslop + slack
        full = newslop > 0.5 * tau2[r]
        front = lo + na
        nc = 0
        if not full:
            for q in range(lo, lo + nl):
                if abs(zref[q]) <= reach:
                    i = idx[q]
                    zd = v[0] * 0
                    for j in range(d):
                        zd += X[i, j] * wn[j]
                    z = np.float64(zd) - bnew
                    on = z >= 0
                    was = q < lo + na
                    if on != was:
                        crossed[q] = 1 if on else 2
                        nc += 1
                    zref[q] = z + newslop if on else z - newslop
            n_part += 1
        else:  # pre-activations of every listed pair (the slop is reset)
            newslop = 0.0
            for q in range(lo, lo + nl):
                i = idx[q]
                zd = v[0] * 0
                for j in range(d):
                    zd += X[i, j] * wn[j]
                z = np.float64(zd) - bnew
                on = z >= 0
                was = q < lo + na
                crossed[q] = 0 if on == was else (1 if on else 2)
                nc += on != was
                zref[q] = z
        if nc > 0:  # the active set changes: keep the previous row (slot still aligned), then active pairs first
            if level[k] != 4:
                _keep_undo(k, lo, na, idx, eref, E_prev, X, wsave, bold, coef, u, undo_W, undo_b)
                level[k] = 4
            front = lo
            for q in range(lo, lo + nl):
                if zref[q] >= 0:
                    idx[q], idx[front] = idx[front], idx[q]
                    init[q], init[front] = init[front], init[q]
                    zref[q], zref[front] = zref[front], zref[q]
                    crossed[q], crossed[front] = crossed[front], crossed[q]
                    front += 1
        slop[r] = newslop
        n_act[r] = front - lo
        ncross[k] = nc
        crossings += nc
        _anchor(r, lo, front - lo, nl, idx, zref, eref, E, xnorm, xmax, tau2, moved2, slop, mu, K, Kw, F, D, S,
                slack, G1, nc > 0)
    counters[p, 0] = n0
    counters[p, 1] = n1
    counters[p, 2] = n2
    counters[p, 3] = n3
    counters[p, 4] = crossings
    counters[p, 5] = nonfinite
    counters[p, 6] = n_part


@numba.njit(parallel=True, fastmath=_FAST, cache=True)
def check_neurons(due, bounds, X, W, b, W0, b0, a, E, E_prev, cs, start, n_act, n_listed, idx, init, zref, eref,
                  crossed, mu, K, Kw, F, D, tau2, moved2, slop, dist, Sd, bdist, Sb, xnorm, xmax, slack, S, undo_W,
                  undo_b, level, ncross, counters, G1):  # pragma: no cover - compiled
    r"""Attend to the ``due`` neurons at the new iterate :math:`t+1` (``E`` = :math:`E(t+1)`, ``S`` = S(t+1)).

    With :math:`\Delta E = E(t+1) - E(s_r)` over :math:`A_r` (:math:`s_r` the anchor), the pre-activations moved by
    :math:`z_{rj}(t+1) - z_{rj}(s_r) = -c\,a_r(\beta + x_j\cdot v)`, :math:`\beta = \sum_{A_r}\Delta E_i`,
    :math:`v = X_{A_r}^\top \Delta E`, :math:`c = \eta m^{-1/2}`, so no pair has crossed while
    :math:`c(|\beta| + \|v\|\max\|x\|) < \mu_r`. Level 0 bounds :math:`\|v\| \le \sigma_r\|\Delta E\|` from
    ``E`` alone; level 1 computes v; either renews the deadline
    :math:`D_r = S + (\mu_r - \text{movement} - \text{slack})/K_r`. Otherwise (level 2) the weights are brought up
    to date, :math:`w_r \leftarrow w_r(s_r) - c\,a_r v`, :math:`b_r \leftarrow b_r(s_r) + c\,a_r\beta`, the listed
    pairs within reach of the movement are recomputed; when one crossed, every listed pair is recomputed and the
    crossings are flagged (``crossed``); the neuron is anchored at :math:`t+1` (``level`` 2, or 4 when its row at
    the previous iterate was kept in ``undo_W``). Level 3: the certificate of its last examination ran out (examined
    by the caller after the weights are brought up to date; row kept).
    ``counters[p]`` = (level 0, level 1, level 2, level 3, crossings, non-finite, level 2 without a full
    recomputation).
    """
    parts = bounds.shape[0] - 1
    for p in numba.prange(parts):
        _check_part(p, due, bounds, X, W, b, W0, b0, a, E, E_prev, cs, start, n_act, n_listed, idx, init, zref, eref,
                    crossed, mu, K, Kw, F, D, tau2, moved2, slop, dist, Sd, bdist, Sb, xnorm, xmax, slack, S, undo_W,
                    undo_b, level, ncross, counters, G1)


@numba.njit(inline="always")
def _touch(i, k, delta, C, H, Gp1, inv_m):  # pragma: no cover - compiled
    C[i, k] += delta
    h = Gp1[i, k] * C[i, k] * inv_m
    H[i, k] = h
    if i != k:
        C[k, i] += delta
        H[k, i] = h


@numba.njit(cache=True)
def apply_crossings(neurons, start, n_act, n_listed, idx, init, zref, slop, crossed, a, extra_start, extra_count,
                    extra_idx, extra_z, extra_init, Gp1, C, H, f, inv_sqrt_m, inv_m,
                    flips):  # pragma: no cover - compiled
    r"""Apply the flagged crossings of ``neurons`` (in order) to the outputs, the pattern counts
    :math:`C = A^\top A` and :math:`H_A = (G + 1)\odot C/m` (entries recomputed from C, so H stays exact).

    Per neuron: K = active pairs not flagged, P = active pairs flagged entered, Q = listed pairs flagged left plus
    the neuron's ``extra`` leaves (``extra_start[u]``, ``extra_count[u]`` for ``neurons[u]``). Leaving Q and then
    entering P one pair at a time changes C by :math:`-\mathbf 1_Q`-terms and :math:`+\mathbf 1_P`-terms against
    the current set. The output of input j changes by :math:`\pm m^{-1/2} a_r z_{rj}(t+1)` (the linear step
    counted an active pair's new pre-activation, or none for an inactive one). Returns the new flip count and
    clears the flags.
    """
    n = f.shape[0]
    kept = np.empty(n, dtype=np.int64)
    plist = np.empty(n, dtype=np.int64)
    qlist = np.empty(n, dtype=np.int64)
    for u in range(neurons.shape[0]):
        r = neurons[u]
        lo = start[r]
        na = n_act[r]
        nl = n_listed[r]
        ar = np.float64(a[r])
        nk = 0
        npp = 0
        nq = 0
        sl = slop[r]  # zref is inflated by the slop, away from zero
        for q in range(lo, lo + na):
            if crossed[q] == 1:
                plist[npp] = q
                npp += 1
                flips += 1 if init[q] == 0 else -1
                f[idx[q]] += ar * (zref[q] - sl) * inv_sqrt_m
            else:
                kept[nk] = idx[q]
                nk += 1
        for q in range(lo + na, lo + nl):
            if crossed[q] == 2:
                qlist[nq] = idx[q]
                nq += 1
                flips += 1 if init[q] != 0 else -1
                f[idx[q]] -= ar * (zref[q] + sl) * inv_sqrt_m
        for s in range(extra_start[u], extra_start[u] + extra_count[u]):
            qlist[nq] = extra_idx[s]
            nq += 1
            flips += 1 if extra_init[s] != 0 else -1
            f[extra_idx[s]] -= ar * extra_z[s] * inv_sqrt_m
        # leaves: the set shrinks from K ∪ Q to K
        for s in range(nq):
            i = qlist[s]
            for t in range(nk):
                _touch(i, kept[t], -1, C, H, Gp1, inv_m)
            for t in range(s + 1, nq):
                _touch(i, qlist[t], -1, C, H, Gp1, inv_m)
            _touch(i, i, -1, C, H, Gp1, inv_m)
        # entries: the set grows from K to K ∪ P
        for s in range(npp):
            i = idx[plist[s]]
            for t in range(nk):
                _touch(i, kept[t], 1, C, H, Gp1, inv_m)
            for t in range(s):
                _touch(i, idx[plist[t]], 1, C, H, Gp1, inv_m)
            _touch(i, i, 1, C, H, Gp1, inv_m)
        for q in range(lo, lo + nl):
            crossed[q] = 0
    return flips


@numba.njit(parallel=True, cache=True)
def save_active(neurons, start, n_act, idx, init):  # pragma: no cover - compiled
    """CSR of the active inputs (sorted) and their t = 0 flags of ``neurons``, before they are examined again."""
    k = neurons.shape[0]
    ptr = np.zeros(k + 1, dtype=np.int64)
    for u in range(k):
        ptr[u + 1] = ptr[u] + n_act[neurons[u]]
    out = np.empty(ptr[k], dtype=np.int64)
    flags = np.empty(ptr[k], dtype=np.uint8)
    for u in numba.prange(k):
        r = neurons[u]
        o = ptr[u]
        na = n_act[r]
        order = np.argsort(idx[start[r] : start[r] + na])
        for s in range(na):
            out[o + s] = idx[start[r] + order[s]]
            flags[o + s] = init[start[r] + order[s]]
    return ptr, out, flags


@numba.njit(cache=True)
def exam_diff(Z, b, block, u0, old_ptr, old_idx, old_init, start, n_act, idx, crossed, leave_count, leave_idx,
              leave_z, leave_init):  # pragma: no cover - compiled
    """After the examination of ``block`` (Z rows in order, before the biases ``b``; entry ``u0 + j`` of the saved
    active lists ``old_*``): flag the pairs that entered in the new slots (their active pairs are in input order)
    and record the ones that left with their pre-activation (in ``leave_*`` at the saved lists' positions,
    ``leave_count[u]`` per neuron). Returns the number of pairs that entered."""
    entered = 0
    for j in range(block.shape[0]):
        r = block[j]
        u = u0 + j
        s = old_ptr[u]
        s_end = old_ptr[u + 1]
        c = 0
        lo = start[r]
        for q in range(lo, lo + n_act[r]):
            i = idx[q]
            while s < s_end and old_idx[s] < i:  # an old active input that is no longer active
                leave_idx[old_ptr[u] + c] = old_idx[s]
                leave_z[old_ptr[u] + c] = np.float64(Z[j, old_idx[s]] - b[j])
                leave_init[old_ptr[u] + c] = old_init[s]
                c += 1
                s += 1
            if s < s_end and old_idx[s] == i:
                s += 1
            else:
                crossed[q] = 1
                entered += 1
        while s < s_end:
            leave_idx[old_ptr[u] + c] = old_idx[s]
            leave_z[old_ptr[u] + c] = np.float64(Z[j, old_idx[s]] - b[j])
            leave_init[old_ptr[u] + c] = old_init[s]
            c += 1
            s += 1
        leave_count[u] = c
    return entered


@numba.njit(parallel=True, cache=True)
def anchor_exam(Z, b, block, start, n_act, n_listed, idx, zref, eref, E, xnorm, xmax, tau2, moved2, slop, mu, K, Kw,
                F, D, S, slack, tau2_new, W, W0, b0, dist, Sd, bdist, Sb, G1):  # pragma: no cover - compiled
    """Anchor the examined ``block`` at the current iterate: pre-activations of the listed pairs from Z, the
    certificate (``_anchor``) with a fresh examination margin ``tau2_new``, and the exact distances from t = 0."""
    for j in numba.prange(block.shape[0]):
        r = block[j]
        lo = start[r]
        for q in range(lo, lo + n_listed[r]):
            zref[q] = np.float64(Z[j, idx[q]] - b[j])
        tau2[r] = tau2_new
        moved2[r] = 0.0
        slop[r] = 0.0
        _anchor(r, lo, n_act[r], n_listed[r], idx, zref, eref, E, xnorm, xmax, tau2, moved2, slop, mu, K, Kw, F, D,
                S, slack, G1, True)
        dd = 0.0
        for k in range(W.shape[1]):
            e0 = np.float64(W[r, k]) - np.float64(W0[r, k])
            dd += e0 * e0
        dist[r] = np.sqrt(dd)
        Sd[r] = S
        bdist[r] = abs(np.float64(b[j]) - np.float64(b0[r]))
        Sb[r] = S


@numba.njit(parallel=True, cache=True)
def pattern_counts(ptr, idx, by_input_ptr, by_input, n):  # pragma: no cover - compiled
    r""":math:`C = A^\top A` (:math:`C_{ik}` = neurons active for both x_i and x_k), one row per input in parallel:
    row i sums the active sets of the neurons active for x_i (``by_input`` lists them, CSR ``by_input_ptr``)."""
    C = np.zeros((n, n), dtype=np.int32)
    for i in numba.prange(n):
        for s in range(by_input_ptr[i], by_input_ptr[i + 1]):
            r = by_input[s]
            for t in range(ptr[r], ptr[r + 1]):
                C[i, idx[t]] += 1
    return C


@numba.njit(parallel=True, fastmath=_FAST, cache=True)
def bring_up_to_date(bounds, X, W, b, a, E, cs, start, n_act, n_listed, idx, zref, eref, mu, K, Kw, F, D, tau2,
                     moved2, slop, xnorm, xmax, slack, S, f_part, nonfinite):  # pragma: no cover - compiled
    r"""Every neuron's parameters at the current iterate,
    :math:`w_r = w_r(s_r) - c\,a_r X_{A_r}^	op(E - E(s_r))`, :math:`b_r = b_r(s_r) + c\,a_r \sum_{A_r}(E - E(s_r))`,
    written to W, b (the neuron is re-anchored there: its margin drops by the exact movement since its anchor and
    its deadline is renewed), and the outputs they give on the tracked active pairs,
    ``f_part[p]`` = :math:`\sum_r a_r\,\mathrm{relu}(w_r\cdot x_i - b_r)` over part p's neurons."""
    parts = bounds.shape[0] - 1
    d = X.shape[1]
    for p in numba.prange(parts):
        f = f_part[p]
        f[:] = 0.0
        v = np.empty(d)
        bad = 0
        for r in range(bounds[p], bounds[p + 1]):
            lo = start[r]
            na = n_act[r]
            if na == 0:
                continue
            beta = _displacement(lo, na, idx, E, eref, X, v)
            coef = cs * np.float64(a[r])
            step2 = 0.0
            vv = 0.0
            for j in range(d):
                vv += v[j] * v[j]
                wold = np.float64(W[r, j])
                W[r, j] = wold - coef * v[j]
                step2 += (np.float64(W[r, j]) - wold) ** 2
            bold = np.float64(b[r])
            b[r] = bold + coef * beta
            bnew = np.float64(b[r])
            move = cs * (abs(beta) + np.sqrt(vv) * xmax)
            mv = np.sqrt(step2) * xmax + abs(bnew - bold)
            if not (np.isfinite(move) and np.isfinite(mv)):
                bad += 1
                move = INF
                mv = INF
            moved2[r] += mv
            for q in range(lo, lo + na):
                eref[q] = E[idx[q]]
            mu[r] -= move
            slop[r] += move
            D[r] = S + (mu[r] - slack) / K[r]
            ar = np.float64(a[r])
            for q in range(lo, lo + na):
                i = idx[q]
                z = 0.0
                for j in range(d):
                    z += np.float64(X[i, j]) * np.float64(W[r, j])
                z -= bnew
                if z > 0:
                    f[i] += ar * z
        nonfinite[p] = bad


@numba.njit(parallel=True, fastmath=_FAST, cache=True)
def movement(X, W, b, W0, b0, a, E, cs, start, n_act, idx, eref, dist, Sd, Kw, bdist, Sb, S, parts):  # pragma: no cover
    r""":math:`R_w = \max_r\|w_r(t) - w_r(0)\|` and :math:`R_b = \max_r|b_r(t) - b_r(0)|`, exactly, computing only
    the neurons that could attain them (compiled; ``# pragma: no cover``).

    ``dist[r]`` was exact when the path length was ``Sd[r]``; since then the row moved by at most
    ``Kw[r] (S - Sd[r])`` (:math:`\|\Delta w_r\| \le c\|e\|_\infty \sum_{A_r}\|x_i\|` per step), so the distance
    lies in ``dist ± Kw (S - Sd)``: only neurons whose upper end reaches the largest lower end are brought to
    the current iterate (from their anchor, without changing it) and their distance recomputed. Likewise for the
    biases with rate ``n_act``. Returns (R_w, R_b, neurons whose row was recomputed)."""
    m = dist.shape[0]
    d = X.shape[1]
    lw = np.zeros(parts)
    lb = np.zeros(parts)
    for p in numba.prange(parts):
        bw = 0.0
        bb = 0.0
        for r in range(m * p // parts, m * (p + 1) // parts):
            bw = max(bw, dist[r] - Kw[r] * (S - Sd[r]))
            bb = max(bb, bdist[r] - n_act[r] * (S - Sb[r]))
        lw[p] = bw
        lb[p] = bb
    floor_w = lw.max() * (1.0 - 1e-12)
    floor_b = lb.max() * (1.0 - 1e-12)
    hw = np.zeros(parts)
    hb = np.zeros(parts)
    work = np.zeros(parts, dtype=np.int64)
    for p in numba.prange(parts):
        v = np.empty(d)
        bw = 0.0
        bb = 0.0
        c = 0
        for r in range(m * p // parts, m * (p + 1) // parts):
            lo = start[r]
            na = n_act[r]
            coef = cs * np.float64(a[r])
            if Sd[r] < S and dist[r] + Kw[r] * (S - Sd[r]) >= floor_w:
                _displacement(lo, na, idx, E, eref, X, v)
                dd = 0.0
                for j in range(d):
                    e0 = np.float64(W[r, j]) - coef * v[j] - np.float64(W0[r, j])
                    dd += e0 * e0
                dist[r] = np.sqrt(dd)
                Sd[r] = S
                c += 1
            if Sb[r] < S and bdist[r] + na * (S - Sb[r]) >= floor_b:
                beta = 0.0
                for q in range(lo, lo + na):
                    beta += E[idx[q]] - eref[q]
                bdist[r] = abs(np.float64(b[r]) + coef * beta - np.float64(b0[r]))
                Sb[r] = S
            if Sd[r] == S:
                bw = max(bw, dist[r])
            if Sb[r] == S:
                bb = max(bb, bdist[r])
        hw[p] = bw
        hb[p] = bb
        work[p] = c
    return hw.max(), hb.max(), work.sum()
