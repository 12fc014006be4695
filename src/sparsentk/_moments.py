r"""Gaussian moments of a thresholded ReLU as functions of the angle θ, tabulated once per bias (paper-notes §5).

For a zero-mean bivariate normal :math:`(u, v)` with unit variances and correlation :math:`\rho = \cos\theta`, and a
threshold :math:`B \ge 0`:

.. math::

    \text{(P)}\quad L_B(\theta) &= P(u \ge B,\ v \ge B)
        = \frac1{2\pi}\int_\theta^\pi g(t)\,dt, \qquad g(t) = e^{-B^2/(1+\cos t)}, \\
    \text{(J)}\quad J_B(\theta) &= E[\mathrm{relu}(u-B)\,\mathrm{relu}(v-B)] = \int_\theta^\pi \sin s\,L_B(s)\,ds, \\
    \text{(M2)}\quad M_2(B) &= J_B(0) = (1+B^2)\bar\Phi(B) - B\varphi(B).

(P) is Plackett's identity written from θ = π, where :math:`L_B(\pi) = 0` (every term positive, so relative accuracy
survives large thresholds); (J) follows from Price's theorem :math:`\partial J/\partial\rho = L` (paper-notes §5;
Rosenbaum 1961 gives the closed form, which loses digits by cancellation beyond B ≈ 6). Both come from one pass over
the θ-grid of :mod:`sparsentk._orthant`: with nodes :math:`\theta_k`, the pieces

.. math::

    p_k = \int_{\theta_k}^{\theta_{k+1}} \sin s\,L(s)\,ds
        = (\cos\theta_k - \cos\theta_{k+1})\,L(\theta_{k+1})
          + \frac1{2\pi}\int_{\theta_k}^{\theta_{k+1}} g(t)\,(\cos\theta_k - \cos t)\,dt \;\ge 0

(10-point Gauss–Legendre per interval) give :math:`J(\theta_k) = \sum_{i \ge k} p_i` and
:math:`I(\theta_k) = M_2 - J(\theta_k) = \sum_{i<k} p_i` without cancellation.

The deep kernel needs, per layer, the maps of the variance-preserving network (:math:`c_B = 1/M_2(B)`):
:math:`\rho' = c_B J_B(\theta)`, :math:`\dot P = c_B L_B(\theta)` and the next angle

.. math:: \theta' = \arccos\rho' = 2\,\mathrm{atan2}\big(\sqrt{c_B I_B(\theta)},\ \sqrt{1 + c_B J_B(\theta)}\big),

which keeps full relative accuracy as θ → 0 (where :math:`1 - \rho' = c_B I_B(\theta) \approx \chi_1\theta^2/2`).
All three are tabulated (values and exact first and second derivatives at the nodes, quintic Hermite) and evaluated
together from one grid index. Below B = 0.01 the edge of g near θ = π (δ = π − t ≈ B) is sharper than the grid:
the last interval is integrated on geometric panels, and the layer maps at angles above ``EDGE_THETA`` come from
direct quadrature (:func:`edge_maps`); the (P) and (J) tables themselves refuse such thresholds.
``activation="linear"`` uses :math:`L = 1`, :math:`J = \cos\theta + B^2`,
:math:`M_2 = 1 + B^2` (the identity in place of the ReLU; P2's linear network at B = 0).
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from sparsentk import _orthant

#: Intervals of the θ-grid (the same grid as the orthant tables).
TABLE_SIZE = _orthant.TABLE_SIZE
#: Positive thresholds below this are refused by the tables (the edge of g near θ = π is sharper than the grid),
#: except by the layer maps, which evaluate angles above ``EDGE_THETA`` by quadrature (:func:`edge_maps`).
TABLE_MIN_BIAS = _orthant.TABLE_MIN_BIAS
#: For 0 < B < TABLE_MIN_BIAS the layer tables are used up to this angle (where g is smooth on the grid's scale).
EDGE_THETA = 0.75 * math.pi
ACTIVATIONS = ("relu", "linear")


def _g(t: np.ndarray, b2: float) -> np.ndarray:
    """g(t) = exp(−B²/(1 + cos t)) with 1 + cos t = 2cos²(t/2) (accurate near π); g(π) = 0 for B > 0, 1 at B = 0."""
    half = np.cos(0.5 * t)
    one_plus = 2.0 * half * half
    if b2 == 0.0:
        return np.ones_like(t)
    with np.errstate(divide="ignore", over="ignore", under="ignore"):
        return np.where(one_plus > 0, np.exp(-b2 / np.where(one_plus > 0, one_plus, 1.0)), 0.0)


@numba.njit(cache=True)
def _cumsum(x):  # pragma: no cover - compiled
    """Cumulative sums with Neumaier's compensation (error ~1 ulp of each partial sum, not n ulps)."""
    out = np.empty_like(x)
    total = 0.0
    comp = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        t = total + v
        if abs(total) >= abs(v):
            comp += (total - t) + v
        else:
            comp += (v - t) + total
        total = t
        out[i] = total + comp
    return out


@numba.njit(cache=True)
def _edge_integrals(a, b, b2, nodes, weights):  # pragma: no cover - compiled
    """(∫ g, ∫ g·(cos δ − cos b)) over δ = π − t ∈ [a, b], g = exp(−B²/(2 sin²(δ/2))), on geometric panels toward a
    (g turns on at δ ≈ B: flat below, smooth above)."""
    G = 0.0
    H = 0.0
    hi = b
    bias = math.sqrt(b2)
    for _ in range(400):
        if hi <= a or (a == 0.0 and hi < 1e-3 * bias):
            break
        lo = max(0.5 * hi, a)
        if hi - lo < 1e-3 * (b - a) and lo > a:
            lo = a if a > 0.0 else lo
        half = 0.5 * (hi - lo)
        for q in range(nodes.shape[0]):
            d = lo + half * (nodes[q] + 1.0)
            sh = math.sin(0.5 * d)
            g = math.exp(-b2 / (2.0 * sh * sh)) if sh > 0.0 else 0.0
            G += weights[q] * half * g
            H += weights[q] * half * g * 2.0 * math.sin(0.5 * (b + d)) * math.sin(0.5 * (b - d))
        hi = lo
    return G, H


def _check_table_bias(bias: float) -> None:
    if not (bias == 0.0 or bias >= TABLE_MIN_BIAS):
        raise ValueError(
            f"bias: expected 0 or a threshold >= {TABLE_MIN_BIAS} (the tabulated moments are accurate to 1e-13 "
            f"there; smaller positive thresholds are not supported), got {bias}"
        )


@functools.lru_cache(maxsize=32)
def node_values(bias: float, activation: str = "relu") -> dict[str, np.ndarray]:
    r"""Exact values on the θ-grid: ``theta``, ``L``, ``dL``, ``d2L``, ``J``, ``I`` (arrays of TABLE_SIZE + 1)
    and ``M2`` (a float). ``J`` and ``I`` are accurate in the relative sense (sums of positive pieces)."""
    n = TABLE_SIZE
    h = math.pi / n
    theta = np.linspace(0.0, math.pi, n + 1)
    theta[-1] = math.pi
    if activation == "linear":
        half = np.sin(0.5 * theta)
        ones = np.ones(n + 1)
        J = np.cos(theta) + bias * bias
        I = 2.0 * half * half
        M2 = 1.0 + bias * bias
        out = {"theta": theta, "L": ones, "dL": 0 * ones, "d2L": 0 * ones, "J": J, "I": I, "M2": M2}
    else:
        b2 = bias * bias
        left = theta[:-1]
        t = left[:, None] + (0.5 * h) * (_orthant._GL_NODES[None, :] + 1.0)  # GL nodes on [θ_k, θ_k+1]
        gt = _g(t, b2)
        w = (0.5 * h) * _orthant._GL_WEIGHTS
        G = gt @ w  # ∫ g over each interval
        # cos θ_k − cos t = 2 sin((t + θ_k)/2) sin((t − θ_k)/2) ≥ 0
        H = (gt * (2.0 * np.sin(0.5 * (t + left[:, None])) * np.sin(0.5 * (t - left[:, None])))) @ w
        if 0.0 < bias < TABLE_MIN_BIAS:
            # the last interval holds the turn-on of g at δ = π − t ≈ B when B is below the grid step: geometric
            # panels toward π (the other intervals, δ ≥ h, see a smooth g: one Gauss–Legendre panel is exact)
            G[-1], H[-1] = _edge_integrals(0.0, math.pi - left[-1], b2, _orthant._GL_NODES, _orthant._GL_WEIGHTS)
        L = np.concatenate([_cumsum(G[::-1].copy())[::-1], [0.0]]) / (2.0 * math.pi)
        D = 2.0 * np.sin(left + 0.5 * h) * math.sin(0.5 * h)  # cos θ_k − cos θ_k+1
        pieces = D * L[1:] + H / (2.0 * math.pi)
        J = np.concatenate([_cumsum(pieces[::-1].copy())[::-1], [0.0]])
        I = np.concatenate([[0.0], _cumsum(pieces)])
        M2 = float(J[0])
        gv = _g(theta, b2)
        half = np.cos(0.5 * theta)
        with np.errstate(divide="ignore", invalid="ignore"):
            dg = np.where(gv > 0, -gv * b2 * np.sin(theta) / (4.0 * half**4), 0.0)
        out = {"theta": theta, "L": L, "dL": -gv / (2 * math.pi), "d2L": -dg / (2 * math.pi), "J": J, "I": I,
               "M2": M2}
    for value in out.values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return out


def m2(bias: float, activation: str = "relu") -> float:
    r""":math:`M_2(B) = E[\mathrm{relu}(u - B)^2] = (1+B^2)\bar\Phi(B) - B\varphi(B)`, :math:`u \sim N(0,1)`
    (``linear``: :math:`1 + B^2`), from the tabulated quadrature (relative accuracy ~1e-15 for every B ≥ 0; the
    closed form loses ~B⁴ε by cancellation)."""
    if activation == "linear":
        return 1.0 + bias * bias
    return node_values(bias, activation)["M2"]


@functools.lru_cache(maxsize=32)
def moment_tables(bias: float, activation: str = "relu") -> dict[str, np.ndarray]:
    """Quintic Hermite tables (TABLE_SIZE × 6) of ``L`` (P) and ``J`` (J) in θ."""
    _check_table_bias(bias)
    v = node_values(bias, activation)
    h = math.pi / TABLE_SIZE
    theta, L = v["theta"], v["L"]
    dJ = -np.sin(theta) * L
    d2J = -(np.cos(theta) * L + np.sin(theta) * v["dL"])
    tables = {
        "L": _orthant.hermite_coefficients(L, h * v["dL"], h * h * v["d2L"]),
        "J": _orthant.hermite_coefficients(v["J"], h * dJ, h * h * d2J),
    }
    for t in tables.values():
        t.setflags(write=False)
    return tables


@functools.lru_cache(maxsize=32)
def layer_table(bias: float, activation: str = "relu") -> np.ndarray:
    r"""Packed table (TABLE_SIZE × 3 × 6) of the layer maps :math:`\theta'`, :math:`\rho' = c_B J_B`,
    :math:`\dot P = c_B L_B` in θ, for the variance-preserving network (:math:`c_B = 1/M_2(B)`).

    For ``0 < B < TABLE_MIN_BIAS`` the table is accurate for θ ≤ ``EDGE_THETA`` only (the integrand's edge near
    θ = π is sharper than the grid there); :func:`edge_maps` gives the maps beyond it."""
    if activation != "relu" or bias == 0.0 or bias >= TABLE_MIN_BIAS:
        _check_table_bias(bias)
    v = node_values(bias, activation)
    h = math.pi / TABLE_SIZE
    theta, L, dL, d2L, J, I = v["theta"], v["L"], v["dL"], v["d2L"], v["J"], v["I"]
    c = 1.0 / v["M2"]
    sin, cos = np.sin(theta), np.cos(theta)
    rho = c * J
    one_minus, one_plus = c * I, 1.0 + c * J
    rho_d1 = -c * sin * L
    rho_d2 = -c * (cos * L + sin * dL)
    T = 2.0 * np.arctan2(np.sqrt(one_minus), np.sqrt(one_plus))
    sinT = np.sqrt(one_minus * one_plus)
    T1 = np.empty_like(T)
    T2 = np.empty_like(T)
    with np.errstate(divide="ignore", invalid="ignore"):
        T1[1:] = c * sin[1:] * L[1:] / sinT[1:]
        T2[1:] = (c * (cos[1:] * L[1:] + sin[1:] * dL[1:]) - T1[1:] ** 2 * rho[1:]) / sinT[1:]
    if not (np.isfinite(T1[-1]) and np.isfinite(T2[-1])):  # sin T(π) = 0 only for the linear map at B = 0: T = θ
        T1[-1], T2[-1] = 1.0, 0.0
    chi1 = c * L[0]
    T1[0] = math.sqrt(chi1)  # sin T · T' = c sin θ L(θ): T ≈ √χ₁ θ + (c L'(0) / (3√χ₁)) θ²
    T2[0] = 2.0 * c * dL[0] / (3.0 * math.sqrt(chi1))
    rho[0] = 1.0  # c_B J_B(0) = 1 exactly: pin the diagonal
    table = np.empty((TABLE_SIZE, 3, 6))
    table[:, 0] = _orthant.hermite_coefficients(T, h * T1, h * h * T2)
    table[:, 1] = _orthant.hermite_coefficients(rho, h * rho_d1, h * h * rho_d2)
    table[:, 2] = _orthant.hermite_coefficients(c * L, h * c * dL, h * h * c * d2L)
    table.setflags(write=False)
    return table


@numba.njit(parallel=True, cache=True)
def _eval_many(coef, theta, out):  # pragma: no cover - compiled
    flat_t = theta.reshape(-1)
    flat_o = out.reshape(-1)
    for i in numba.prange(flat_t.shape[0]):
        flat_o[i] = _orthant.theta_eval(coef, flat_t[i])


def _theta_array(theta) -> np.ndarray:
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    if theta.size and np.isnan(theta).any():
        raise ValueError("theta: expected angles in [0, pi], got NaN")
    if theta.size and (theta.min() < 0 or theta.max() > math.pi):
        raise ValueError(f"theta: expected angles in [0, pi], got values in [{theta.min()}, {theta.max()}]")
    return theta


def orthant(theta, bias: float) -> np.ndarray:
    r"""(P) :math:`L_B(\theta) = P(u \ge B, v \ge B)`, :math:`\mathrm{corr}(u, v) = \cos\theta`, from the table
    (relative accuracy ~1e-13 while the value is above the underflow range; exactly 0 at θ = π)."""
    theta = _theta_array(theta)
    out = np.empty_like(theta)
    _eval_many(moment_tables(bias)["L"], theta, out)
    out[theta >= math.pi] = 0.0
    return out


def relu_moment(theta, bias: float) -> np.ndarray:
    r"""(J) :math:`J_B(\theta) = E[\mathrm{relu}(u - B)\,\mathrm{relu}(v - B)]` for unit variances and
    :math:`\mathrm{corr}(u, v) = \cos\theta`, from the table (relative accuracy ~1e-13; exactly 0 at θ = π)."""
    theta = _theta_array(theta)
    out = np.empty_like(theta)
    _eval_many(moment_tables(bias)["J"], theta, out)
    out[theta >= math.pi] = 0.0
    return out


@functools.lru_cache(maxsize=32)
def _component(bias: float, activation: str, q: int) -> np.ndarray:
    return np.ascontiguousarray(layer_table(bias, activation)[:, q])


def layer_maps(theta, bias: float, activation: str = "relu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""One layer of the variance-preserving network in the angle: :math:`(\theta', \rho', \dot P)` with
    :math:`\rho' = \cos\theta' = c_B J_B(\theta)` and :math:`\dot P = c_B L_B(\theta)` (B = 0: P2's angle map
    :math:`\theta' = \arccos(((\pi-\theta)/\pi)\cos\theta + \sin\theta/\pi)`)."""
    theta = _theta_array(theta)
    outs = []
    for q in range(3):
        out = np.empty_like(theta)
        _eval_many(_component(bias, activation, q), theta, out)
        outs.append(out)
    if activation == "relu" and 0.0 < bias < TABLE_MIN_BIAS:
        c = 1.0 / m2(bias)
        for idx in zip(*np.nonzero(theta > EDGE_THETA), strict=True):
            T, R, P = edge_maps(float(theta[idx]), bias * bias, c, 1.0 / c, _orthant._GL_NODES, _orthant._GL_WEIGHTS)
            outs[0][idx], outs[1][idx], outs[2][idx] = T, R, P
    return outs[0], outs[1], outs[2]


@numba.njit(cache=True)
def edge_maps(theta, b2, c, m2, nodes, weights):  # pragma: no cover - compiled
    r"""The layer maps :math:`(\theta', c_B J_B(\theta), c_B L_B(\theta))` by direct quadrature, for small
    positive thresholds and θ near π. With :math:`\delta = \pi - t`, :math:`g = \exp(-B^2/(2\sin^2(\delta/2)))`
    is flat at δ = 0 and turns on at δ ≈ B: Gauss–Legendre on geometric panels [Δ/2, Δ], [Δ/4, Δ/2], … of
    :math:`L = \frac1{2\pi}\int_0^\Delta g\,d\delta` and
    :math:`J = \frac1{2\pi}\int_0^\Delta g\,(\cos\delta - \cos\Delta)\,d\delta`, Δ = π − θ; then
    :math:`I = M_2 - J` and :math:`\theta' = 2\,\mathrm{atan2}(\sqrt{c I}, \sqrt{1 + c J})`."""
    big = math.pi - theta
    L = 0.0
    J = 0.0
    hi = big
    b = math.sqrt(b2)
    for _ in range(200):
        if hi < 1e-3 * b or hi <= 0.0:
            break  # g < exp(−2·10⁶) below
        lo = 0.5 * hi
        half = 0.5 * (hi - lo)
        for q in range(nodes.shape[0]):
            d = lo + half * (nodes[q] + 1.0)
            sh = math.sin(0.5 * d)
            g = math.exp(-b2 / (2.0 * sh * sh))
            L += weights[q] * half * g
            J += weights[q] * half * g * 2.0 * math.sin(0.5 * (big + d)) * math.sin(0.5 * (big - d))
        hi = lo
    L /= 2.0 * math.pi
    J /= 2.0 * math.pi
    one_minus = c * (m2 - J)
    one_plus = 1.0 + c * J
    return 2.0 * math.atan2(math.sqrt(one_minus), math.sqrt(one_plus)), c * J, c * L


@numba.njit(cache=True)
def eval_with_derivatives(table, theta, out):  # pragma: no cover - compiled
    """``out[q, r, i]``: the r-th θ-derivative (r = 0, 1, 2) of component q of a packed (size × Q × 6) table at
    ``theta[i]`` (the interpolant's own derivatives)."""
    size = table.shape[0]
    scale = size / math.pi
    for i in range(theta.shape[0]):
        x = theta[i] * scale
        if x < 0.0:
            x = 0.0
        k = int(x)
        if k >= size:
            k = size - 1
        t = x - k
        for q in range(table.shape[1]):
            c0 = table[k, q, 0]
            c1 = table[k, q, 1]
            c2 = table[k, q, 2]
            c3 = table[k, q, 3]
            c4 = table[k, q, 4]
            c5 = table[k, q, 5]
            out[q, 0, i] = c0 + t * (c1 + t * (c2 + t * (c3 + t * (c4 + t * c5))))
            out[q, 1, i] = (c1 + t * (2 * c2 + t * (3 * c3 + t * (4 * c4 + t * 5 * c5)))) * scale
            out[q, 2, i] = (2 * c2 + t * (6 * c3 + t * (12 * c4 + t * 20 * c5))) * scale * scale
