"""Compiled loops of exact GD in function space (see ``sparsentk._function_space``).

Pool layout (shared with ``sparsentk._sparse_kernels``, whose examination loops fill it): neuron ``r`` owns the slot
``[start[r], start[r] + n_listed[r])`` of the pool arrays; its first ``n_act[r]`` pairs are its active inputs
:math:`A_r`, the rest the inactive inputs listed by its last examination. Beside ``idx`` (input) and ``init``
(active at t = 0) this engine keeps per pair ``zref`` (pre-activation at the neuron's anchor, in float64), ``eref``
(the cumulative residual :math:`E_i` at the anchor, for active pairs) and ``crossed`` (1: entered :math:`A_r` at
this step, 2: left it).

Every loop over neurons takes contiguous ranges ``bounds`` (one per part); the only writes shared between neurons
(``C``, ``H``, ``f``) happen in :func:`apply_crossings`: integer counts per owned row range, then f serially in
neuron order, so the results do not depend on the thread count.
"""

from __future__ import annotations

import numba
import numpy as np

INF = np.inf
#: Largest active set whose ‖X_A‖_op is bounded by Gershgorin's theorem on G_AA (|A|² lookups of an n × n array
#: that does not stay in cache); Frobenius above.
GERSHGORIN_MAX = 4
#: Dot products may be reassociated (vectorized), as in ``sparsentk._sparse_kernels``: results agree up to rounding.
_FAST = {"reassoc", "contract"}


@numba.njit(inline="always")
def _is_due(r, Dt, DV, ep, T, V, epoch, ring):  # pragma: no cover - compiled
    """Neuron r's certificate has run out at iterate T: its step deadline, its deviation-clock deadline, or its
    reference residual has left the ring."""
    if Dt[r] <= T or ep[r] <= epoch - ring:
        return True
    return V[ep[r] % ring] >= DV[r]


@numba.njit(parallel=True, cache=True)
def due_neurons(Dt, DV, ep, T, V, epoch, parts):  # pragma: no cover - compiled
    """The neurons (sorted) whose certificate has run out at iterate ``T`` (see :func:`_certify`): ``Dt[r] ≤ T``,
    or the deviation clock ``V`` of their reference residual (epoch ``ep[r]``, slot ``ep[r] % len(V)``) reached
    ``DV[r]``, or that reference left the ring (``ep[r] ≤ epoch − len(V)``)."""
    m = Dt.shape[0]
    ring = V.shape[0]
    counts = np.zeros(parts, dtype=np.int64)
    for p in numba.prange(parts):
        c = 0
        for r in range(m * p // parts, m * (p + 1) // parts):
            c += _is_due(r, Dt, DV, ep, T, V, epoch, ring)
        counts[p] = c
    offsets = np.zeros(parts + 1, dtype=np.int64)
    for p in range(parts):
        offsets[p + 1] = offsets[p] + counts[p]
    out = np.empty(offsets[parts], dtype=np.int64)
    for p in numba.prange(parts):
        o = offsets[p]
        for r in range(m * p // parts, m * (p + 1) // parts):
            if _is_due(r, Dt, DV, ep, T, V, epoch, ring):
                out[o] = r
                o += 1
    return out


@numba.njit(inline="always")
def _anchor(r, lo, na, nl, idx, zref, eref, E, xnorm, xmax, tau2, moved2, slop, mu, K, Kw, F, X,
            changed):  # pragma: no cover - compiled
    r"""Certificate of neuron r at its anchor: nearest margin μ_r (listed pairs exactly, the others through the last
    examination's τ₂ less the movement since), σ_r = ``F[r]`` ≥ :math:`\|X_{A_r}\|_{op}` (recomputed when its
    active set ``changed``: the smaller of the Frobenius norm and, for at most ``GERSHGORIN_MAX`` active inputs,
    the Gershgorin bound :math:`\max_i \sum_{k\in A_r}|G_{ik}|` on :math:`\lambda_{\max}(X_{A_r}X_{A_r}^\top)`),
    the per-step rates :math:`K_w = \min(\sum_{A_r}\|x_i\|, \sigma_r\sqrt{|A_r|})` (weights) and
    :math:`K_r = |A_r| + \max_j\|x_j\| K_w` (pre-activations, per unit of :math:`c\|\cdot\|_\infty` of the
    residuals), and the anchor's cumulative residuals ``eref``."""
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
        if na <= GERSHGORIN_MAX:  # |G_ik| from rows of X (in cache), not from the n × n array (which is not)
            g = 0.0
            for q in range(lo, lo + na):
                i = idx[q]
                row = 0.0
                for t in range(lo, lo + na):
                    k = idx[t]
                    dot = 0.0
                    for j in range(X.shape[1]):
                        dot += np.float64(X[i, j]) * np.float64(X[k, j])
                    row += abs(dot)
                g = max(g, row)
            sig2 = min(sig2, g * (1.0 + 1e-9) + 1e-12 * na * xmax * xmax)  # rounding of the dot products
        F[r] = np.sqrt(sig2)
    mu[r] = near
    Kw[r] = min(sx, F[r] * np.sqrt(na))
    K[r] = na + xmax * Kw[r]


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
def _add_outputs(lo, na, idx, X, w, bias, ar, f):  # pragma: no cover - compiled
    """``f[i] += a_r relu(w·x_i − b)`` over one neuron's active slots ``lo … lo + na``; returns how many of those
    pre-activations are not finite."""
    bad = 0
    for q in range(lo, lo + na):
        i = idx[q]
        z = 0.0
        for j in range(X.shape[1]):
            z += np.float64(X[i, j]) * np.float64(w[j])
        z -= bias
        if z > 0:
            f[i] += ar * z
        elif not np.isfinite(z):
            bad += 1
    return bad


@numba.njit(inline="always", fastmath=_FAST)
def _keep_undo(k, lo, na, idx, eref, E_prev, X, wsave, bsave, coef, u, undo_W, undo_b):  # pragma: no cover
    """The row of neuron ``due[k]`` at the previous iterate, :math:`w_r(s_r) - c a_r X_{A_r}^\top(E(t) - E(s_r))`,
    into ``undo_W[k]`` (for a revert), from its saved anchor row and its active set at the anchor."""
    ub = _displacement(lo, na, idx, E_prev, eref, X, u)
    for j in range(X.shape[1]):
        undo_W[k, j] = wsave[j] - coef * u[j]
    undo_b[k] = bsave + coef * ub


@numba.njit(inline="always", fastmath=_FAST)
def _certify(r, lo, na, nl, idx, zref, eref, E, ebar, ar, cs, X, xnorm, xmax, tau2, moved2, F, slack, theta, horizon,
             vbuf, ubuf, cast, m_buf, v_buf):  # pragma: no cover - compiled
    r"""Certificate of neuron r at the current iterate T from its anchor :math:`s_r` and the reference residual
    :math:`\bar e`, without its weights. For a pair (r, j), with :math:`\Delta E = (E(T) - E(s_r))_{A_r}`,
    :math:`v = X_{A_r}^\top\Delta E` and :math:`u = X_{A_r}^\top \bar e_{A_r}`,

    .. math::

        z_{rj}(T) = z_{rj}(s_r) - c\,a_r (\mathbf 1^\top\Delta E + x_j\cdot v), \qquad
        z_{rj}(T+k) = z_{rj}(T) - k\,c\,a_r \underbrace{(\mathbf 1^\top\bar e_{A_r} + x_j\cdot u)}_{g_j}
        - c\,a_r \sum_{i\in A_r} \Big(\sum_{T\le u'<T+k} (e_i(u') - \bar e_i)\Big)(x_i\cdot x_j + 1),

    the last term at most :math:`K_r (V(T+k) - V(T))` with the deviation clock
    :math:`V = \sum_{u'} c\|e(u') - \bar e\|_\infty`. First from the residuals alone (:math:`\|v\| \le
    \sigma_r\|\Delta E\|`, :math:`\|u\| \le \sigma_r\|\bar e_{A_r}\|`); when a listed pair is near the threshold
    (its bounded distance allows fewer than ``horizon`` steps at its bounded speed), v and u are computed (|A_r|
    rows of X) and the near pairs get their exact pre-activation and velocity :math:`g_j`. The others, and the
    inputs not listed (margin τ₂ less the movement), use the norm bounds :math:`|z_{rj}(T) - z_{rj}(s_r)| \le
    c(|\mathbf 1^\top\Delta E| + \|v\|\,\|x_j\|)`, :math:`|g_j| \le |\mathbf 1^\top\bar e_{A_r}| + \|u\|\,\|x_j\|`.
    With margins m and approach speeds v per step, the neuron is safe at T + k while
    :math:`v k \le m - \text{slack} - \mu_V` for every pair and :math:`K_r(V(T+k) - V(T)) < \mu_V`,
    :math:`\mu_V = \theta(\min m - \text{slack})`.

    Returns (status, k*, μ_V, exact pairs): status 0 certified for k ≤ k*; 1 a listed pair crossed or lies within
    the slack (its weights decide); 2 the examination's margin has run out."""
    beta = 0.0
    s2 = 0.0
    eb = 0.0
    es2 = 0.0
    for q in range(lo, lo + na):
        i = idx[q]
        d_ = E[i] - eref[q]
        e_ = ebar[i]
        beta += d_
        s2 += d_ * d_
        eb += e_
        es2 += e_ * e_
    qd = F[r] * np.sqrt(s2)
    qv = F[r] * np.sqrt(es2)
    d = X.shape[1]
    car = cs * ar
    exact = 0
    for stage in range(2):
        if stage == 1:  # v and u from |A_r| rows of X: exact norms, and exact near pairs
            for k in range(d):
                vbuf[k] = 0.0
                ubuf[k] = 0.0
            for q in range(lo, lo + na):
                i = idx[q]
                cast[0] = E[i] - eref[q]
                cast[1] = ebar[i]
                d_ = cast[0]
                e_ = cast[1]
                for k in range(d):
                    vbuf[k] += d_ * X[i, k]
                    ubuf[k] += e_ * X[i, k]
            vv = 0.0
            uu = 0.0
            for k in range(d):
                vv += np.float64(vbuf[k]) * np.float64(vbuf[k])
                uu += np.float64(ubuf[k]) * np.float64(ubuf[k])
            qd = min(qd, np.sqrt(vv))
            qv = min(qv, np.sqrt(uu))
        m_un = tau2[r] - moved2[r] - cs * (abs(beta) + qd * xmax)
        if not m_un > slack:
            if stage == 0:
                continue
            return 2, 0.0, 0.0, exact
        mu = m_un
        m_buf[0] = m_un
        v_buf[0] = cs * (abs(eb) + qv * xmax)
        nb = 1
        near = False
        for q in range(lo, lo + nl):
            j = idx[q]
            xj = xnorm[j]
            low = abs(zref[q]) - cs * (abs(beta) + qd * xj)
            vb = cs * (abs(eb) + qv * xj)
            if low - slack >= horizon * vb:  # far: the bounds alone allow `horizon` steps
                m = low
                v = vb
            elif stage == 0:
                near = True
                break
            else:
                xv = vbuf[0] * 0
                xu = vbuf[0] * 0
                for k in range(d):
                    xv += X[j, k] * vbuf[k]
                    xu += X[j, k] * ubuf[k]
                exact += 1
                z = zref[q] - car * (beta + np.float64(xv))
                if (z >= 0) != (q < lo + na) or not abs(z) > slack:
                    return 1, 0.0, 0.0, exact
                m = abs(z)
                g = eb + np.float64(xu)
                v = car * g if z > 0 else -car * g  # z moves by −c a_r g per step: toward 0 when v > 0
            if m < mu:
                mu = m
            m_buf[nb] = m
            v_buf[nb] = v
            nb += 1
        if near:
            continue
        muV = theta * (mu - slack)
        kstar = INF
        for s in range(nb):
            if v_buf[s] > 0:
                k = (m_buf[s] - slack - muV) / v_buf[s]
                if k < kstar:
                    kstar = k
        return 0, kstar, muV, exact
    return 2, 0.0, 0.0, exact  # not reached


@numba.njit(inline="always")
def _renew(r, kstar, muV, K, T, Vnow, epoch, Dt, DV, ep):  # pragma: no cover - compiled
    """Deadlines of a certified neuron: due at iterate ``T + ⌊k*⌋ + 1``, or when its deviation clock has grown by
    μ_V / K_r since now, or when the reference residual of ``epoch`` leaves the ring."""
    Dt[r] = T + 1.0 + np.floor(min(kstar, 1e15))
    DV[r] = Vnow + muV / K[r] if K[r] > 0 else INF
    ep[r] = epoch


@numba.njit(fastmath=_FAST, cache=True)
def _check_part(p, due, bounds, X, W, b, W0, b0, a, E, E_prev, ebar, cs, start, n_act, n_listed, idx, init, zref,
                eref, crossed, mu, K, Kw, F, Dt, DV, ep, T, Vnow, epoch, theta, horizon, tau2, moved2, slop, dist,
                Sd, bdist, Sb, xnorm, xmax, slack, S, undo_W, undo_b, level, ncross,
                counters):  # pragma: no cover - compiled
    d = X.shape[1]
    n = X.shape[0]
    v = np.empty(d, dtype=W.dtype)  # the network's dtype: float32 networks gather and add in float32
    u = np.empty(d)
    wn = np.empty(d, dtype=W.dtype)
    wsave = np.empty(d)
    cast = np.empty(1, dtype=W.dtype)
    vbuf = np.empty(d, dtype=X.dtype)  # the certificate's dot products in the network's dtype (its slack covers them)
    ubuf = np.empty(d, dtype=X.dtype)
    cast2 = np.empty(2, dtype=X.dtype)
    m_buf = np.empty(n + 1)
    v_buf = np.empty(n + 1)
    n0 = n1 = n2 = n3 = 0
    crossings = 0
    nonfinite = 0
    exact_pairs = 0
    for k in range(bounds[p], bounds[p + 1]):
        r = due[k]
        lo = start[r]
        na = n_act[r]
        nl = n_listed[r]
        level[k] = 0
        ncross[k] = 0
        if na == 0:  # no active pair: no gradient, the neuron never moves
            Dt[r] = INF
            DV[r] = INF
            ep[r] = epoch
            continue
        ar = np.float64(a[r])
        if slop[r] == 0.0:  # the listed pre-activations at the anchor are exact: certify without the weights
            status, kstar, muV, ex = _certify(r, lo, na, nl, idx, zref, eref, E, ebar, ar, cs, X, xnorm, xmax, tau2,
                                              moved2, F, slack, theta, horizon, vbuf, ubuf, cast2, m_buf, v_buf)
            exact_pairs += ex
            if status == 0:
                _renew(r, kstar, muV, K, T, Vnow, epoch, Dt, DV, ep)
                if ex:
                    n1 += 1
                else:
                    n0 += 1
                continue
        # level 2: bring the neuron up to date, w_r ← w_r(s_r) − c a_r X_Aᵀ ΔE, b_r ← b_r(s_r) + c a_r 1ᵀΔE. The
        # row at the previous iterate is kept (``undo_W``) when the neuron's active set changes at this step or it
        # is examined; otherwise a revert finds it from the new anchor.
        for j in range(d):
            v[j] = 0.0
        beta = 0.0
        for q in range(lo, lo + na):
            i = idx[q]
            de64 = E[i] - eref[q]
            beta += de64
            cast[0] = de64
            de = cast[0]
            for j in range(d):
                v[j] += de * X[i, j]
        coef = cs * ar
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
        # pre-activations of every listed pair, from the weights (the slop is reset): the crossings are decided
        # there, as dense GD decides them
        nc = 0
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
        front = lo + na
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
        slop[r] = 0.0
        n_act[r] = front - lo
        ncross[k] = nc
        crossings += nc
        _anchor(r, lo, front - lo, nl, idx, zref, eref, E, xnorm, xmax, tau2, moved2, slop, mu, K, Kw, F, X, nc > 0)
        if front == lo:
            Dt[r] = INF
            DV[r] = INF
            ep[r] = epoch
            continue
        status, kstar, muV, ex = _certify(r, lo, front - lo, nl, idx, zref, eref, E, ebar, ar, cs, X, xnorm, xmax,
                                          tau2, moved2, F, slack, theta, horizon, vbuf, ubuf, cast2, m_buf, v_buf)
        exact_pairs += ex
        if status == 0:
            _renew(r, kstar, muV, K, T, Vnow, epoch, Dt, DV, ep)
        else:  # a pair within the slack of its threshold: decided from the weights again at the next iterate
            Dt[r] = T + 1.0
    counters[p, 0] = n0
    counters[p, 1] = n1
    counters[p, 2] = n2
    counters[p, 3] = n3
    counters[p, 4] = crossings
    counters[p, 5] = nonfinite
    counters[p, 6] = exact_pairs


@numba.njit(parallel=True, fastmath=_FAST, cache=True)
def check_neurons(due, bounds, X, W, b, W0, b0, a, E, E_prev, ebar, cs, start, n_act, n_listed, idx, init, zref,
                  eref, crossed, mu, K, Kw, F, Dt, DV, ep, T, Vnow, epoch, theta, horizon, tau2, moved2, slop, dist,
                  Sd, bdist, Sb, xnorm, xmax, slack, S, undo_W, undo_b, level, ncross,
                  counters):  # pragma: no cover - compiled
    r"""Attend to the ``due`` neurons at the new iterate T (``E`` = :math:`E(T)`, ``S`` = S(T), ``ebar`` the
    reference residual of ``epoch`` and ``Vnow`` its deviation clock at T).

    A neuron whose listed pre-activations at its anchor are exact (``slop`` 0) is certified again
    (:func:`_certify`): ``level`` 0, without its weights. Otherwise — a listed pair crossed or lies
    within the slack, the examination's margin ran out, or the anchor is inexact — its weights are brought up to
    date (level 2), :math:`w_r \leftarrow w_r(s_r) - c\,a_r X_{A_r}^\top\Delta E`,
    :math:`b_r \leftarrow b_r(s_r) + c\,a_r \mathbf 1^\top\Delta E`, every listed pair is recomputed from them and
    the crossings flagged (``crossed``); the neuron is anchored at T (``level`` 2, or 4 when its row at the previous
    iterate was kept in ``undo_W``) and certified there. Level 3: the certificate of its last examination ran out
    (examined by the caller; row kept). ``counters[p]`` = (certified by the bounds alone, certified with exact
    pairs, level 2, level 3, crossings, non-finite, pairs computed exactly).
    """
    parts = bounds.shape[0] - 1
    for p in numba.prange(parts):
        _check_part(p, due, bounds, X, W, b, W0, b0, a, E, E_prev, ebar, cs, start, n_act, n_listed, idx, init,
                    zref, eref, crossed, mu, K, Kw, F, Dt, DV, ep, T, Vnow, epoch, theta, horizon, tau2, moved2,
                    slop, dist, Sd, bdist, Sb, xnorm, xmax, slack, S, undo_W, undo_b, level, ncross, counters)


@numba.njit(parallel=True, fastmath=_FAST, cache=True)
def kernel_product(Gp1, C, e, scale, out, parts):  # pragma: no cover - compiled
    r"""``out`` ← scale · :math:`((G + 1)\odot C)\,e`, i.e. :math:`\text{scale}\cdot m\,H_A e` without storing
    :math:`H_A` (a crossing then writes one integer of C instead of C and H). Rows in ``parts`` contiguous blocks;
    each row's sum is the same on any number of threads."""
    n = e.shape[0]
    for p in numba.prange(parts):
        for i in range(n * p // parts, n * (p + 1) // parts):
            acc = 0.0
            for j in range(n):
                acc += Gp1[i, j] * np.float64(C[i, j]) * e[j]
            out[i] = scale * acc


@numba.njit(inline="always")
def _touch(i, k, delta, C, rlo, rhi):  # pragma: no cover - compiled
    """Add ``delta`` to :math:`C_{ik}` and :math:`C_{ki}`, for the rows ``rlo … rhi`` only (the rows a part
    owns)."""
    if rlo <= i < rhi:
        C[i, k] += delta
    if i != k and rlo <= k < rhi:
        C[k, i] += delta


@numba.njit(parallel=True, cache=True)
def apply_crossings(neurons, start, n_act, n_listed, idx, init, zref, slop, crossed, a, extra_start, extra_count,
                    extra_idx, extra_z, extra_init, C, f, inv_sqrt_m, flips, parts):  # pragma: no cover - compiled
    r"""Apply the flagged crossings of ``neurons`` (in order) to the outputs and the pattern counts
    :math:`C = A^\top A` (exact integers: :math:`H_A = (G + 1)\odot C/m` is never stored, see
    :func:`kernel_product`).

    Per neuron: K = active pairs not flagged, P = active pairs flagged entered, Q = listed pairs flagged left plus
    the neuron's ``extra`` leaves (``extra_start[u]``, ``extra_count[u]`` for ``neurons[u]``). Leaving Q and then
    entering P one pair at a time changes C by :math:`-\mathbf 1_Q`-terms and :math:`+\mathbf 1_P`-terms against
    the current set. The output of input j changes by :math:`\pm m^{-1/2} a_r z_{rj}(t+1)` (the linear step
    counted an active pair's new pre-activation, or none for an inactive one). C is updated in parallel, each
    part owning a range of rows (integer counts: the result does not depend on the number of ``parts``); f and
    the flips serially. Returns the new flip count and clears the flags.
    """
    n = f.shape[0]
    for p in numba.prange(parts):
        rlo = n * p // parts
        rhi = n * (p + 1) // parts
        kept = np.empty(n, dtype=np.int64)
        plist = np.empty(n, dtype=np.int64)
        qlist = np.empty(n, dtype=np.int64)
        for u in range(neurons.shape[0]):
            r = neurons[u]
            lo = start[r]
            na = n_act[r]
            nl = n_listed[r]
            nk = 0
            npp = 0
            nq = 0
            for q in range(lo, lo + na):
                if crossed[q] == 1:
                    plist[npp] = idx[q]
                    npp += 1
                else:
                    kept[nk] = idx[q]
                    nk += 1
            for q in range(lo + na, lo + nl):
                if crossed[q] == 2:
                    qlist[nq] = idx[q]
                    nq += 1
            for s in range(extra_start[u], extra_start[u] + extra_count[u]):
                qlist[nq] = extra_idx[s]
                nq += 1
            # leaves: the set shrinks from K ∪ Q to K
            for s in range(nq):
                i = qlist[s]
                for t in range(nk):
                    _touch(i, kept[t], -1, C, rlo, rhi)
                for t in range(s + 1, nq):
                    _touch(i, qlist[t], -1, C, rlo, rhi)
                _touch(i, i, -1, C, rlo, rhi)
            # entries: the set grows from K to K ∪ P
            for s in range(npp):
                i = plist[s]
                for t in range(nk):
                    _touch(i, kept[t], 1, C, rlo, rhi)
                for t in range(s):
                    _touch(i, plist[t], 1, C, rlo, rhi)
                _touch(i, i, 1, C, rlo, rhi)
    for u in range(neurons.shape[0]):
        r = neurons[u]
        lo = start[r]
        na = n_act[r]
        nl = n_listed[r]
        ar = np.float64(a[r])
        sl = slop[r]  # zref is inflated by the slop, away from zero
        for q in range(lo, lo + na):
            if crossed[q] == 1:
                flips += 1 if init[q] == 0 else -1
                f[idx[q]] += ar * (zref[q] - sl) * inv_sqrt_m
        for q in range(lo + na, lo + nl):
            if crossed[q] == 2:
                flips += 1 if init[q] != 0 else -1
                f[idx[q]] -= ar * (zref[q] + sl) * inv_sqrt_m
        for s in range(extra_start[u], extra_start[u] + extra_count[u]):
            flips += 1 if extra_init[s] != 0 else -1
            f[extra_idx[s]] -= ar * extra_z[s] * inv_sqrt_m
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
                F, Dt, S, tau2_new, W, W0, b0, dist, Sd, bdist, Sb, X):  # pragma: no cover - compiled
    """Anchor the examined ``block`` at the current iterate: pre-activations of the listed pairs from Z, the
    rates (``_anchor``) with a fresh examination margin ``tau2_new``, and the exact distances from t = 0. The
    neurons are due at the next iterate (certified there, once the reference residual is known)."""
    for j in numba.prange(block.shape[0]):
        r = block[j]
        lo = start[r]
        for q in range(lo, lo + n_listed[r]):
            zref[q] = np.float64(Z[j, idx[q]] - b[j])
        tau2[r] = tau2_new
        moved2[r] = 0.0
        slop[r] = 0.0
        _anchor(r, lo, n_act[r], n_listed[r], idx, zref, eref, E, xnorm, xmax, tau2, moved2, slop, mu, K, Kw, F, X,
                True)
        Dt[r] = -INF
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
def bring_up_to_date(bounds, X, W, b, a, E, cs, start, n_act, n_listed, idx, zref, eref, mu, K, Kw, F, Dt, tau2,
                     moved2, slop, xnorm, xmax, slack, S, f_part, nonfinite, listed):  # pragma: no cover - compiled
    r"""Every neuron's parameters at the current iterate,
    :math:`w_r = w_r(s_r) - c\,a_r X_{A_r}^\top(E - E(s_r))`, :math:`b_r = b_r(s_r) + c\,a_r \sum_{A_r}(E - E(s_r))`,
    written to W, b, and the outputs they give on the tracked active pairs,
    ``f_part[p]`` = :math:`\sum_r a_r\,\mathrm{relu}(w_r\cdot x_i - b_r)` over part p's neurons. The neuron is
    re-anchored there: with ``listed`` its listed pre-activations are recomputed (the anchor stays exact and its
    certificate holds); otherwise they are kept, inflated by the movement (``slop``), and the neuron is due
    (brought up to date from its weights when it is next checked)."""
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
            if listed:
                for q in range(lo, lo + n_listed[r]):
                    i = idx[q]
                    z = 0.0
                    for j in range(d):
                        z += np.float64(X[i, j]) * np.float64(W[r, j])
                    zref[q] = z - bnew
            else:
                slop[r] += move
                Dt[r] = -INF
            bad += _add_outputs(lo, na, idx, X, W[r], bnew, np.float64(a[r]), f)
        nonfinite[p] = bad


@numba.njit(parallel=True, fastmath=_FAST, cache=True)
def forward_weights(bounds, X, W, b, a, E, cs, start, n_act, idx, eref, f_part, nonfinite):  # pragma: no cover
    r"""The outputs of every neuron's weights at the current iterate on its tracked active pairs, without changing
    its anchor: :math:`w_r = w_r(s_r) - c\,a_r X_{A_r}^\top(E - E(s_r))` and
    :math:`b_r = b_r(s_r) + c\,a_r \sum_{A_r}(E - E(s_r))`, rounded to the network's dtype as
    :func:`bring_up_to_date` writes them, ``f_part[p]`` = :math:`\sum_r a_r\,\mathrm{relu}(w_r\cdot x_i - b_r)`."""
    parts = bounds.shape[0] - 1
    d = X.shape[1]
    for p in numba.prange(parts):
        f = f_part[p]
        f[:] = 0.0
        v = np.empty(d)
        wt = np.empty(d, dtype=W.dtype)
        bt = np.empty(1, dtype=W.dtype)
        bad = 0
        for r in range(bounds[p], bounds[p + 1]):
            lo = start[r]
            na = n_act[r]
            if na == 0:
                continue
            beta = _displacement(lo, na, idx, E, eref, X, v)
            coef = cs * np.float64(a[r])
            for j in range(d):
                wt[j] = np.float64(W[r, j]) - coef * v[j]
            bt[0] = np.float64(b[r]) + coef * beta
            bnew = np.float64(bt[0])
            if not np.isfinite(bnew):
                bad += 1
            bad += _add_outputs(lo, na, idx, X, wt, bnew, np.float64(a[r]), f)
        nonfinite[p] = bad


@numba.njit(inline="always")
def _widths(r, S, T, V, epoch, ring, Kw, n_act, Sd, Sb, mS, mT, mV, mep, mU, mB):  # pragma: no cover - compiled
    """How far neuron r's distance from t = 0 (weights, bias) may have moved since it was last computed exactly:
    ``Kw (S − Sd)`` along the certified path, or, while that computation is the one recorded with the reference
    residual of epoch ``mep`` (still in the ring), its speed under that reference times the steps plus ``Kw`` times
    the growth of the deviation clock; the smaller of the two."""
    ww = Kw[r] * (S - Sd[r])
    wb = n_act[r] * (S - Sb[r])
    k = mep[r]
    if k >= 0 and k > epoch - ring:
        dV = V[k % ring] - mV[r]
        if Sd[r] == mS[r]:
            ww = min(ww, mU[r] * (T - mT[r]) + Kw[r] * dV)
        if Sb[r] == mS[r]:
            wb = min(wb, mB[r] * (T - mT[r]) + n_act[r] * dV)
    return ww, wb


@numba.njit(parallel=True, fastmath=_FAST, cache=True)
def movement(X, W, b, W0, b0, a, E, cs, start, n_act, idx, eref, dist, Sd, Kw, bdist, Sb, S, parts, T, V, epoch, ebar,
             mS, mT, mV, mep, mU, mB):  # pragma: no cover - compiled
    r""":math:`R_w = \max_r\|w_r(t) - w_r(0)\|` and :math:`R_b = \max_r|b_r(t) - b_r(0)|`, exactly, computing only
    the neurons that could attain them (compiled; ``# pragma: no cover``).

    ``dist[r]`` was exact when the path length was ``Sd[r]``; since then the row moved by at most
    ``Kw[r] (S - Sd[r])`` (:math:`\|\Delta w_r\| \le c\|e\|_\infty \sum_{A_r}\|x_i\|` per step), or, when that exact
    value was computed here at iterate ``mT`` with the reference residual :math:`\bar e` of epoch ``mep``, by at
    most :math:`(T - m_T)\,c\|X_{A_r}^\top\bar e\| + K_w (V(T) - V(m_T))` (the deviation clock of
    ``sparsentk._function_space``), so the distance lies in ``dist ± width``: only neurons whose upper end reaches
    the largest lower end are brought to the current iterate ``T`` (from their anchor, without changing it) and
    their distances recomputed (with the speed under the current reference, epoch ``epoch``, ``ebar``). Likewise
    for the biases with rates ``n_act`` and :math:`c|\mathbf 1^\top\bar e_{A_r}|`. Returns (R_w, R_b, neurons whose
    row was recomputed)."""
    m = dist.shape[0]
    d = X.shape[1]
    ring = V.shape[0]
    lw = np.zeros(parts)
    lb = np.zeros(parts)
    for p in numba.prange(parts):
        bw = 0.0
        bb = 0.0
        for r in range(m * p // parts, m * (p + 1) // parts):
            ww, wb = _widths(r, S, T, V, epoch, ring, Kw, n_act, Sd, Sb, mS, mT, mV, mep, mU, mB)
            bw = max(bw, dist[r] - ww)
            bb = max(bb, bdist[r] - wb)
        lw[p] = bw
        lb[p] = bb
    floor_w = lw.max() * (1.0 - 1e-12)
    floor_b = lb.max() * (1.0 - 1e-12)
    hw = np.zeros(parts)
    hb = np.zeros(parts)
    work = np.zeros(parts, dtype=np.int64)
    for p in numba.prange(parts):
        v = np.empty(d)
        u = np.empty(d)
        bw = 0.0
        bb = 0.0
        c = 0
        for r in range(m * p // parts, m * (p + 1) // parts):
            lo = start[r]
            na = n_act[r]
            coef = cs * np.float64(a[r])
            ww, wb = _widths(r, S, T, V, epoch, ring, Kw, n_act, Sd, Sb, mS, mT, mV, mep, mU, mB)
            if (Sd[r] < S and dist[r] + ww >= floor_w) or (Sb[r] < S and bdist[r] + wb >= floor_b):
                # both distances, exactly, and the speeds under the current reference
                for j in range(d):
                    v[j] = 0.0
                    u[j] = 0.0
                beta = 0.0
                eb = 0.0
                for q in range(lo, lo + na):
                    i = idx[q]
                    de = E[i] - eref[q]
                    ei = ebar[i]
                    beta += de
                    eb += ei
                    for j in range(d):
                        x = np.float64(X[i, j])
                        v[j] += de * x
                        u[j] += ei * x
                dd = 0.0
                uu = 0.0
                for j in range(d):
                    e0 = np.float64(W[r, j]) - coef * v[j] - np.float64(W0[r, j])
                    dd += e0 * e0
                    uu += u[j] * u[j]
                dist[r] = np.sqrt(dd)
                bdist[r] = abs(np.float64(b[r]) + coef * beta - np.float64(b0[r]))
                Sd[r] = S
                Sb[r] = S
                if epoch >= 0:
                    mS[r] = S
                    mT[r] = T
                    mV[r] = V[epoch % ring]
                    mep[r] = epoch
                    mU[r] = cs * np.sqrt(uu) * (1.0 + 1e-12)
                    mB[r] = cs * abs(eb) * (1.0 + 1e-12)
                c += 1
            if Sd[r] == S:
                bw = max(bw, dist[r])
            if Sb[r] == S:
                bb = max(bb, bdist[r])
        hw[p] = bw
        hb[p] = bb
        work[p] = c
    return hw.max(), hb.max(), work.sum()
