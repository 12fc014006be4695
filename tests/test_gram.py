"""The Gram helper (row panels of general products, mirrored) and robust row angles, against plain computations."""

import math

import numpy as np
import pytest

import sparsentk as snt
from sparsentk import _gram


@pytest.fixture
def small_panels(monkeypatch):
    monkeypatch.setattr(_gram, "PANEL_ENTRIES", 200)  # 8-row panels: many panel boundaries on small inputs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gram_matches_plain_product_and_is_exactly_symmetric(small_panels, dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((37, 11)).astype(dtype)
    G = _gram.gram(X)
    assert G.dtype == dtype
    plain = X.astype(np.float64) @ X.astype(np.float64).T.copy()
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(G, plain, rtol=0, atol=tol * np.abs(plain).max())
    assert np.array_equal(G, G.T)


def test_gram_cross_product_and_out(small_panels):
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((29, 6)), rng.standard_normal((13, 6))
    out = np.full((29, 13), np.nan)
    G = _gram.gram(X, Y, out=out)
    assert G is out
    np.testing.assert_allclose(G, np.einsum("ik,jk->ij", X, Y), rtol=1e-13, atol=1e-13)
    # Y that is X is the symmetric case (exactly symmetric)
    S = _gram.gram(X, X)
    assert np.array_equal(S, S.T)
    with pytest.raises(ValueError, match="out"):
        _gram.gram(X, Y, out=np.empty((2, 2)))
    with pytest.raises(ValueError, match="columns"):
        _gram.gram(X, rng.standard_normal((3, 5)))


def test_gram_empty_and_single_row():
    assert _gram.gram(np.zeros((0, 3))).shape == (0, 0)
    x = np.array([[3.0, 4.0]])
    assert _gram.gram(x).tolist() == [[25.0]]


def test_accumulate_hadamard_matches_plain(small_panels):
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((21, 5)), rng.standard_normal((21, 7))
    out = np.ones((21, 21))
    _gram.accumulate_hadamard(out, A, B, 0.5, 2.0)
    _gram.mirror_upper(out)
    expected = 1.0 + (A @ A.T.copy()) * (0.5 * (B @ B.T.copy()) + 2.0)
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-12)
    assert np.array_equal(out, out.T)
    A2, B2 = rng.standard_normal((4, 5)), rng.standard_normal((4, 7))
    cross = _gram.accumulate_hadamard(np.zeros((21, 4)), A, B, 1.0, 0.0, A2, B2)
    np.testing.assert_allclose(cross, (A @ A2.T) * (B @ B2.T), rtol=1e-13, atol=1e-12)


def _pair_at_angle(t: float, d: int, rng, scale_u=1.0, scale_v=1.0):
    """Two rows at angle t, written in a random orthonormal frame (rounding ~1e-16 in the rows)."""
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    u = Q[:, 0]
    v = math.cos(t) * Q[:, 0] + math.sin(t) * Q[:, 1]
    return scale_u * u, scale_v * v


@pytest.mark.parametrize("t", [1e-12, 1e-9, 1e-6, 1e-3, 0.7, math.pi - 1e-3, math.pi - 1e-7, math.pi - 1e-10])
def test_input_angles_are_accurate_near_parallel_and_antipodal(t):
    rng = np.random.default_rng(3)
    u, v = _pair_at_angle(t, 12, rng, 2.5, 0.3)
    A = snt.input_angles(np.stack([u, v]))
    # the rows carry rounding of about 1e-16; the naive arccos of the Gram ratio errs by ~1e-8 here
    assert abs(A[0, 1] - t) <= 2e-15
    assert A[0, 0] == 0.0 and A[1, 1] == 0.0 and A[0, 1] == A[1, 0]
    cross = snt.input_angles(u[None, :], v[None, :])
    assert abs(cross[0, 0] - t) <= 4e-15


def test_input_angles_exact_multiples():
    x = np.array([0.3, -0.7, 0.2, 1.1])
    A = snt.input_angles(np.stack([x, 2 * x, -4 * x, -0.5 * x]))
    assert A[0, 1] == 0.0 and A[0, 2] == math.pi and A[0, 3] == math.pi and A[2, 3] == 0.0


def test_input_angles_bad_input():
    with pytest.raises(ValueError, match="X: expected non-zero rows"):
        snt.input_angles(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="Y"):
        snt.input_angles(np.eye(2), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="X"):
        snt.input_angles(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="Y"):
        snt.input_angles(np.eye(2), np.eye(3))


def test_bias_ntk_uses_the_gram_helper_and_robust_angles():
    # antipodal pairs of different norms at B = 0: exactly 0 (P = 0 at θ = π), formerly about −4e-10
    x = np.array([0.3, -0.7, 0.2])
    X = np.stack([x, -2 * x, 4 * x])
    K = snt.bias_ntk(X, 0.0)
    assert K[0, 1] == 0.0 and K[1, 2] == 0.0 and K[1, 0] == 0.0
    assert np.array_equal(K, K.T)
    # near-antipodal with different norms (θ = π − 1e-9): P = (π − θ)/(2π) exactly at B = 0
    rng = np.random.default_rng(4)
    u, v = _pair_at_angle(math.pi - 1e-9, 3, rng, 1.0, 3.0)
    K = snt.bias_ntk(np.stack([u, v]), 0.0)
    expected = (u @ v + 1.0) * 1e-9 / (2 * math.pi)
    assert abs(K[0, 1] - expected) <= 1e-6 * abs(expected)
    # near-parallel, unequal norms, B > 0 (Owen's T path) and equal norms (table path): finite and symmetric
    for scale in (1.0, 2.0):
        u, v = _pair_at_angle(1e-9, 3, rng, 1.0, scale)
        K = snt.bias_ntk(np.stack([u, v]), 0.7)
        assert np.isfinite(K).all() and K[0, 1] == K[1, 0]
        assert np.linalg.eigvalsh(K).min() >= -1e-14


def test_near_parallel_pairs_match_a_plain_search():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((30, 4))
    X[7] = 3 * X[2] + 1e-6
    X[11] = -0.5 * X[2]
    X[20] = 0.0
    norms = np.linalg.norm(X, axis=1)
    inv = np.where(norms > 0, 1 / np.where(norms > 0, norms, 1), 0.0)
    G = X @ X.T.copy()
    C = np.abs(G) * inv[:, None] * inv[None, :]
    for symmetric in (True, False):
        rows, cols = _gram.near_parallel_pairs(G, inv, inv, symmetric)
        mask = C > 1 - _gram.NEAR_PARALLEL
        if symmetric:
            mask &= np.triu(np.ones_like(mask), 1).astype(bool)
        i, j = np.nonzero(mask)
        assert rows.tolist() == i.tolist() and cols.tolist() == j.tolist()
    assert (2, 7) in set(zip(*_gram.near_parallel_pairs(G, inv, inv, True), strict=True))
