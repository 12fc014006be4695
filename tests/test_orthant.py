"""orthant_probability against independent oracles: Owen's T, the Plackett integral by quadrature, scipy's bivariate
normal CDF, Monte Carlo and the B = 0 closed form."""

import numpy as np
import pytest
from scipy import integrate
from scipy.special import ndtr, owens_t
from scipy.stats import multivariate_normal

import sparsentk as snt

RHO = np.concatenate([np.linspace(-1, 1, 4001), [-1 + 1e-12, 1 - 1e-12, -0.999999, 0.999999]])


def owen_equal(rho, b):
    rho = np.clip(rho, -1 + 1e-300, 1 - 1e-16)
    return ndtr(-b) - 2 * owens_t(b, np.sqrt((1 - rho) / (1 + rho)))


def plackett_quad(rho, b):
    val, _ = integrate.quad(lambda t: np.exp(-b * b / (1 + np.cos(t))), np.arccos(rho), np.pi / 2, epsabs=1e-15,
                            epsrel=1e-13, limit=200)
    return ndtr(-b) ** 2 + val / (2 * np.pi)


@pytest.mark.parametrize("bias", [0.0, 0.005, 0.01, 0.05, 0.2, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0, 10.0])
def test_equal_thresholds_match_owens_t(bias):
    got = snt.orthant_probability(RHO, bias)
    inner = np.abs(RHO) < 1
    np.testing.assert_allclose(got[inner], owen_equal(RHO[inner], bias), rtol=0, atol=1e-12)
    assert got[RHO == 1][0] == pytest.approx(ndtr(-bias), abs=1e-13)
    assert got[RHO == -1][0] == pytest.approx(max(0.0, 2 * ndtr(-bias) - 1), abs=1e-13)


@pytest.mark.parametrize("bias", [0.001, 0.005, 0.0099, 0.3, 1.0, 2.5, 5.0])
def test_equal_thresholds_match_plackett_quadrature(bias):
    rho = np.array([-0.97, -0.5, -0.1, 0.0, 0.2, 0.6, 0.9, 0.995])
    expected = [plackett_quad(r, bias) for r in rho]
    np.testing.assert_allclose(snt.orthant_probability(rho, bias), expected, rtol=0, atol=1e-12)


def test_zero_bias_closed_form():
    np.testing.assert_allclose(snt.orthant_probability(RHO, 0.0), (np.pi - np.arccos(RHO)) / (2 * np.pi), atol=1e-13)


def test_against_scipy_bivariate_normal_cdf():
    rng = np.random.default_rng(0)
    for _ in range(40):
        h, k = rng.uniform(-2, 3, 2)
        r = rng.uniform(-0.99, 0.99)
        cdf = multivariate_normal(mean=[0, 0], cov=[[1, r], [r, 1]]).cdf([-h, -k])
        assert snt.orthant_probability(r, h, k) == pytest.approx(cdf, abs=1e-7)  # scipy's CDF is ~1e-8 accurate
        assert snt.orthant_probability(r, h) == pytest.approx(
            multivariate_normal(mean=[0, 0], cov=[[1, r], [r, 1]]).cdf([-h, -h]), abs=1e-7)


def test_general_form_against_monte_carlo_and_limits():
    rng = np.random.default_rng(1)
    z1 = rng.standard_normal(2_000_000)
    z2 = 0.4 * z1 + np.sqrt(1 - 0.16) * rng.standard_normal(2_000_000)
    mc = np.mean((z1 >= 0.7) & (z2 >= 1.3))
    assert snt.orthant_probability(0.4, 0.7, 1.3) == pytest.approx(mc, abs=4e-4)
    # the Monte Carlo check alone would pass a 1 % error (P ≈ 0.065, its margin 4e-4): pin the value by quadrature,
    # at this point and at points of the other sign patterns of Owen's formula
    for r, h, k in ((0.4, 0.7, 1.3), (-0.6, 0.2, 1.1), (0.8, -0.5, 0.9), (0.3, -0.4, -1.2), (-0.2, 1.9, 0.05)):
        assert snt.orthant_probability(r, h, k) == pytest.approx(owen_general_ref(r, h, k), abs=1e-9)
    # exact limits, zero and infinite thresholds, broadcasting
    got = snt.orthant_probability(np.array([1.0, -1.0, 0.3, 0.3, 0.3]), np.array([0.5, 0.5, 0.0, np.inf, -np.inf]),
                                  np.array([1.0, 0.2, 1.0, 0.0, 0.4]))
    expected = [ndtr(-1.0), max(0, ndtr(-0.5) + ndtr(-0.2) - 1), owen_general_ref(0.3, 0.0, 1.0), 0.0, ndtr(-0.4)]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert snt.orthant_probability(np.zeros((2, 3)), np.ones((2, 1)), np.ones(3)).shape == (2, 3)


def owen_general_ref(r, h, k):
    val, _ = integrate.dblquad(lambda v, u: np.exp(-(u * u - 2 * r * u * v + v * v) / (2 * (1 - r * r))),
                               h, 12, k, 12, epsabs=1e-13, epsrel=1e-11)
    return val / (2 * np.pi * np.sqrt(1 - r * r))


def test_bad_input():
    with pytest.raises(ValueError, match=r"rho: expected correlations in \[-1, 1\]"):
        snt.orthant_probability(1.5, 1.0)
    with pytest.raises(ValueError, match="rho"):
        snt.orthant_probability(np.nan, 1.0)
    with pytest.raises(ValueError, match="bias"):
        snt.orthant_probability(0.5, np.nan)
