"""Gradient and input angles, and P2's depth theory (Lemma 3.1, crossover, limits, χ₁, ρ*, reliable depth)."""

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import ndtr, owens_t

import sparsentk as snt
from p2_oracles import lemma31_phi
from sparsentk import theory


@pytest.mark.parametrize("L", [0, 1, 3, 10])
def test_gradient_angle_relu_is_lemma_31(L):
    thetas = np.linspace(0.05, math.pi, 15)
    phi = theory.gradient_angle_relu(thetas, L)
    for t, p in zip(thetas, phi, strict=True):
        assert abs(p - lemma31_phi(t, L)) <= 1e-10
    # small angles: φ ≈ √(L θ/π) (P2 §3), where the printed form loses all digits
    if L:
        t = 1e-10
        assert abs(theory.gradient_angle_relu(t, L) / math.sqrt(L * t / math.pi) - 1) <= 1e-3
    assert isinstance(theory.gradient_angle_relu(0.5, L), float)
    assert theory.gradient_angle_relu(0.0, L) == 0.0


def test_gradient_angles_of_the_deep_kernel_and_of_the_gram_matrix():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 5))
    th = snt.input_angles(X)
    K = snt.deep_ntk(X, 3, 0.0, train_bias=False)
    phi = snt.gradient_angles(K)
    np.testing.assert_allclose(phi, theory.gradient_angle_relu(th, 3), atol=1e-10)
    assert np.array_equal(phi, phi.T) and np.all(np.diag(phi) == 0)
    # the linear network keeps the input angles (its NTK is a multiple of the Gram matrix)
    np.testing.assert_allclose(snt.gradient_angles(snt.deep_ntk(X, 4, activation="linear", train_bias=False)), th,
                               atol=1e-7)
    assert snt.min_angle(phi) == phi[~np.eye(8, dtype=bool)].min()
    assert snt.min_angle(np.array([[0.3, 0.2, 0.9]])) == 0.2


def test_reference_constants():
    # paper-notes §5
    for B, chi, rho in ((0.0, 1.0, 1.0), (0.5, 1.4718, 0.4653), (1.0, 2.1059, 0.1527), (2.0, 3.9437, 0.0138)):
        assert abs(theory.chi1(B) - chi) <= 5e-5
        assert abs(theory.fixed_point_correlation(B) - rho) <= 5e-5
    for L, deg in ((1, 66.8), (3, 67.5), (10, 69.6)):
        assert abs(math.degrees(theory.crossover_angle(L)) - deg) <= 0.05
    assert theory.crossover_angle(math.inf) == math.acos(0.25)
    assert abs(math.degrees(theory.angle_limit()) - 75.52) <= 0.01
    assert theory.kappa_limit(5) == 8 / 3 and theory.kappa_limit(5, printed=True) == 3.0
    assert theory.reliable_depth(0.0, 512) == math.inf
    assert abs(theory.reliable_depth(1.0, 512) - math.log(256) / (2 * math.log(theory.chi1(1.0)))) <= 1e-12
    assert 3.5 < theory.reliable_depth(1.0, 512) < 4.5


def test_crossover_is_where_phi_meets_theta():
    for L in (1, 3):
        tc = theory.crossover_angle(L)
        assert abs(lemma31_phi(tc, L) - tc) <= 1e-9
        assert lemma31_phi(tc - 0.1, L) > tc - 0.1 and lemma31_phi(tc + 0.1, L) < tc + 0.1


def test_scale_chi1_and_fixed_point_against_quadrature():
    phi = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    for B in (0.0, 0.5, 2.0):
        m2 = integrate.quad(lambda u, B=B: (u - B) ** 2 * phi(u), B, np.inf, epsabs=0, epsrel=1e-13)[0]
        assert abs(theory.variance_preserving_scale(B) * m2 - 1) <= 1e-11
        assert abs(theory.chi1(B) - ndtr(-B) / m2) <= 1e-11
    assert theory.variance_preserving_scale(0.5, "linear") == 1 / 1.25
    B = 1.0
    rho = theory.fixed_point_correlation(B)
    r = math.sqrt(1 - rho * rho)

    def inner(u):
        mu = rho * u - B
        return r * phi(mu / r) + mu * ndtr(mu / r)

    J = integrate.quad(lambda u: phi(u) * (u - B) * inner(u), B, np.inf, epsabs=0, epsrel=1e-12)[0]
    c = theory.variance_preserving_scale(B)
    assert abs(c * J - rho) <= 1e-10  # a fixed point of ρ ↦ c_B J_B(ρ) ...
    slope = c * (ndtr(-B) - 2 * owens_t(B, math.sqrt((1 - rho) / (1 + rho))))  # ... and stable: c_B L_B(ρ*) < 1
    assert slope < 1


def test_bad_inputs():
    with pytest.raises(ValueError, match="theta_in"):
        theory.gradient_angle_relu(4.0, 2)
    with pytest.raises(ValueError, match="depth"):
        theory.gradient_angle_relu(0.5, -1)
    with pytest.raises(ValueError, match="depth"):
        theory.crossover_angle(0)
    with pytest.raises(ValueError, match="n"):
        theory.kappa_limit(0)
    with pytest.raises(TypeError, match="printed"):
        theory.kappa_limit(3, printed="yes")
    with pytest.raises(ValueError, match="bias"):
        theory.chi1(-1.0)
    with pytest.raises(ValueError, match="width"):
        theory.reliable_depth(1.0, 0)
    with pytest.raises(ValueError, match="activation"):
        theory.variance_preserving_scale(1.0, "tanh")
    with pytest.raises(ValueError, match="K"):
        snt.gradient_angles(np.array([[1.0, 0.5], [0.2, 1.0]]))
    with pytest.raises(ValueError, match="K: expected a positive diagonal"):
        snt.gradient_angles(np.array([[0.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="A"):
        snt.min_angle(np.zeros((1, 1)))
