"""Gaussian moments (M2), (P), (J) of a thresholded ReLU and the layer maps, against scipy quadrature and MC."""

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import ndtr, owens_t

from sparsentk import _moments


def _phi(x):
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def p_quad(theta, B):
    """P(u ≥ B, v ≥ B), corr cos θ: ∫_B^∞ φ(u) Φ̄((B − ρu)/r) du (conditioning on u)."""
    rho, r = math.cos(theta), math.sin(theta)
    return integrate.quad(lambda u: _phi(u) * ndtr(-(B - rho * u) / r), B, np.inf, epsabs=0, epsrel=1e-13,
                          limit=200)[0]


def j_quad(theta, B):
    """E[relu(u − B) relu(v − B)]: E over u of (u − B)·E[relu(v − B) | u], v | u ~ N(ρu, r²)."""
    rho, r = math.cos(theta), math.sin(theta)

    def inner(u):
        mu = rho * u - B
        return r * _phi(mu / r) + mu * ndtr(mu / r)

    return integrate.quad(lambda u: _phi(u) * (u - B) * inner(u), B, np.inf, epsabs=0, epsrel=1e-12, limit=200)[0]


def p_owen(theta, B):
    """Owen (1956): P = Φ̄(B) − 2 T(B, tan(θ/2)) for equal thresholds (paper-notes §2)."""
    return ndtr(-B) - 2 * owens_t(B, math.tan(theta / 2))


THETAS = np.linspace(0.02, math.pi - 0.02, 13)


@pytest.mark.parametrize("B", [0.5, 1.0, 2.0, 4.0, 6.0])
def test_orthant_and_relu_moment_against_quadrature(B):
    P = _moments.orthant(THETAS, B)
    J = _moments.relu_moment(THETAS, B)
    for k, t in enumerate(THETAS):
        p, j = p_quad(t, B), j_quad(t, B)
        scale_p, scale_j = ndtr(-B), _moments.m2(B)
        # relative accuracy wherever the value is not negligible against its own scale (tails below 1e-30 of it)
        if p > 1e-30 * scale_p:
            assert abs(P[k] - p) <= 1e-9 * p + 1e-15 * scale_p, (t, P[k], p)
        else:
            assert abs(P[k] - p) <= 1e-15 * scale_p
        if j > 1e-30 * scale_j:
            assert abs(J[k] - j) <= 1e-9 * j + 1e-15 * scale_j, (t, J[k], j)
        else:
            assert abs(J[k] - j) <= 1e-15 * scale_j


@pytest.mark.parametrize("B", [0.0, 0.3, 1.0, 3.0, 6.0])
def test_m2_against_closed_form_and_quadrature(B):
    closed = (1 + B * B) * ndtr(-B) - B * _phi(B)  # (M2); loses ~B⁴·eps by cancellation
    quad = integrate.quad(lambda u: (u - B) ** 2 * _phi(u), B, np.inf, epsabs=0, epsrel=1e-13)[0]
    assert abs(_moments.m2(B) - quad) <= 1e-11 * quad
    assert abs(_moments.m2(B) - closed) <= 1e-10 * quad
    assert _moments.m2(B, "linear") == 1 + B * B


def test_moments_against_monte_carlo():
    rng = np.random.default_rng(0)
    n = 400_000
    z1, z2 = rng.standard_normal(n), rng.standard_normal(n)
    for B in (0.0, 1.0, 2.0):
        for t in (0.4, 1.3, 2.4):
            u = z1
            v = math.cos(t) * z1 + math.sin(t) * z2
            prod = np.maximum(u - B, 0) * np.maximum(v - B, 0)
            both = (u >= B) & (v >= B)
            J = _moments.relu_moment(np.array([t]), B)[0]
            P = _moments.orthant(np.array([t]), B)[0]
            assert abs(prod.mean() - J) <= 5 * prod.std() / math.sqrt(n) + 1e-7
            assert abs(both.mean() - P) <= 5 * math.sqrt(P * (1 - P) / n) + 1e-7


def test_exact_values_at_the_ends():
    for B in (0.0, 1.0, 6.0):
        assert _moments.orthant(np.array([math.pi]), B)[0] == 0.0  # ρ = −1, B ≥ 0: P = 0
        assert _moments.relu_moment(np.array([math.pi]), B)[0] == 0.0
        assert abs(_moments.orthant(np.array([0.0]), B)[0] - ndtr(-B)) <= 1e-13 * ndtr(-B)
        assert abs(_moments.relu_moment(np.array([0.0]), B)[0] - _moments.m2(B)) <= 1e-13 * _moments.m2(B)
    t = np.linspace(0, math.pi, 7)
    np.testing.assert_allclose(_moments.relu_moment(t, 0.0), (np.sin(t) + (math.pi - t) * np.cos(t)) / (2 * math.pi),
                               rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(_moments.orthant(t, 0.0), (math.pi - t) / (2 * math.pi), rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("B", [0.0, 1.0, 2.0])
def test_layer_maps_keep_relative_accuracy_at_small_angles(B):
    c = 1.0 / _moments.m2(B)
    # 1 − ρ' = c ∫_0^θ sin s L(s) ds (Price), with L by quadrature: an independent small-angle reference
    for t in (1e-10, 1e-6, 1e-3, 0.3, 1.5, 3.0):
        I = integrate.quad(lambda s: math.sin(s) * p_owen(s, B), 0, t, epsabs=0, epsrel=1e-12)[0]
        theta_next = 2 * math.asin(math.sqrt(c * I / 2))
        T, R, Pd = (a[0] for a in _moments.layer_maps(np.array([t]), B))
        assert abs(T - theta_next) <= 1e-9 * theta_next
        assert abs(R - c * j_quad(t, B)) <= 1e-10
        assert abs(Pd - c * p_owen(t, B)) <= 1e-10


def test_linear_layer_maps():
    B = 0.5
    t = np.array([1e-8, 0.4, 2.0, math.pi - 1e-6])
    T, R, Pd = _moments.layer_maps(t, B, "linear")
    c = 1 / (1 + B * B)
    np.testing.assert_allclose(R, c * (np.cos(t) + B * B), rtol=1e-12)
    np.testing.assert_allclose(Pd, c, rtol=1e-14)
    np.testing.assert_allclose(T[1:3], np.arccos(c * (np.cos(t[1:3]) + B * B)), rtol=1e-12)
    assert abs(T[0] - math.sqrt(c) * 1e-8) <= 1e-9 * T[0]
    T0 = _moments.layer_maps(t, 0.0, "linear")[0]
    np.testing.assert_allclose(T0, t, rtol=1e-12)  # the identity: angles are kept at B = 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="theta"):
        _moments.orthant(np.array([-0.1]), 1.0)
    with pytest.raises(ValueError, match="theta"):
        _moments.relu_moment(np.array([4.0]), 1.0)
    with pytest.raises(ValueError, match="theta"):
        _moments.layer_maps(np.array([np.nan]), 1.0)
    with pytest.raises(ValueError, match="bias"):
        _moments.orthant(np.array([1.0]), 0.001)  # (P) and (J) tables: 0 or B >= 0.01


@pytest.mark.parametrize("B", [1e-6, 1e-3, 0.0099])
def test_layer_maps_for_small_thresholds(B):
    # below 0.01 the edge of g near θ = π is sharper than the grid: node values come from geometric panels and
    # angles above 3π/4 from direct quadrature; compare with Owen's T and the (J) quadrature everywhere
    c = 1.0 / _moments.m2(B)
    t = np.array([1e-6, 0.4, 1.5, 2.3, 2.4, 3.0, math.pi - 1e-3, math.pi - 1e-6])
    T, R, Pd = _moments.layer_maps(t, B)
    for k, th in enumerate(t):
        assert abs(R[k] - c * j_quad(th, B)) <= 1e-12
        assert abs(Pd[k] - c * p_owen(th, B)) <= 1e-12
        assert abs(math.cos(T[k]) - R[k]) <= 1e-15
