import numpy as np
import pytest

import sparsentk as snt


def loss(net, X, y):
    r = net.predict(X) - y
    return 0.5 * float(r @ r)


def textbook_predict(net, X):
    out = np.zeros(X.shape[0])
    for i, x in enumerate(X):
        for r in range(net.width):
            out[i] += net.a[r] * max(float(net.W[r] @ x) - float(net.b[r]), 0.0)
    return out / np.sqrt(net.width)


def test_init_distribution_and_fields():
    net = snt.ShallowReLU(dim=7, width=4000, bias=1.5, seed=3)
    assert net.W.shape == (4000, 7) and net.b.shape == (4000,) and net.a.shape == (4000,)
    assert np.all(net.b == 1.5)
    assert set(np.unique(net.a)) == {-1.0, 1.0}
    assert abs(net.W.mean()) < 0.03 and abs(net.W.std() - 1) < 0.03
    assert abs(net.a.mean()) < 0.05


def test_predict_matches_textbook_loop(problem):
    X, _ = problem
    net = snt.ShallowReLU(5, 37, bias=0.3, seed=0)
    np.testing.assert_allclose(net.predict(X), textbook_predict(net, X), rtol=1e-12, atol=1e-14)


def test_predict_chunks_agree_across_block_boundary(problem, monkeypatch):
    X, _ = problem
    net = snt.ShallowReLU(5, 5000, bias=1.0, seed=0)
    full = (np.maximum(X @ net.W.T - net.b, 0) @ net.a) / np.sqrt(net.width)
    np.testing.assert_allclose(net.predict(X), full, rtol=1e-12, atol=1e-13)


def test_active_and_preactivations(problem):
    X, _ = problem
    net = snt.ShallowReLU(5, 300, bias=1.0, seed=1)
    Z = net.preactivations(X)
    for i in range(3):
        for r in range(0, 300, 37):
            assert Z[i, r] == pytest.approx(float(X[i] @ net.W[r]) - 1.0, abs=1e-12)
    A = net.active(X)
    assert A.shape == (24, 300) and A.dtype == bool
    np.testing.assert_array_equal(A.toarray(), Z >= 0)


def test_gradients_match_finite_differences(problem):
    X, y = problem
    net = snt.ShallowReLU(5, 16, bias=0.2, seed=5)
    gW, gb = net.gradients(X, net.predict(X) - y)
    eps = 1e-6
    for r in range(16):
        for k in range(5):
            plus, minus = net.copy(), net.copy()
            plus.W[r, k] += eps
            minus.W[r, k] -= eps
            fd = (loss(plus, X, y) - loss(minus, X, y)) / (2 * eps)
            assert gW[r, k] == pytest.approx(fd, rel=1e-5, abs=1e-7)
        plus, minus = net.copy(), net.copy()
        plus.b[r] += eps
        minus.b[r] -= eps
        fd = (loss(plus, X, y) - loss(minus, X, y)) / (2 * eps)
        assert gb[r] == pytest.approx(fd, rel=1e-5, abs=1e-7)


def test_symmetric_init_is_zero_and_mirrored(problem):
    X, _ = problem
    net = snt.ShallowReLU(5, 64, bias=0.5, init="symmetric", seed=2)
    half = 32
    np.testing.assert_array_equal(net.W[:half], net.W[half:])
    np.testing.assert_array_equal(net.b[:half], net.b[half:])
    np.testing.assert_array_equal(net.a[:half], -net.a[half:])
    assert np.abs(net.predict(X)).max() < 1e-12  # exact up to summation rounding


def test_float32_and_float64_share_parameters(problem):
    X, _ = problem
    n64 = snt.ShallowReLU(5, 100, bias=0.5, seed=9)
    n32 = snt.ShallowReLU(5, 100, bias=0.5, seed=9, dtype=np.float32)
    assert n32.W.dtype == np.float32 and n32.predict(X).dtype == np.float32
    np.testing.assert_array_equal(n32.W, n64.W.astype(np.float32))
    np.testing.assert_allclose(n32.predict(X), n64.predict(X), rtol=1e-4, atol=1e-5)


def test_same_seed_same_network():
    a, b = snt.ShallowReLU(4, 10, seed=11), snt.ShallowReLU(4, 10, seed=11)
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.a, b.a)


def test_copy_is_independent():
    net = snt.ShallowReLU(3, 5, seed=0)
    other = net.copy()
    other.W[0, 0] += 1
    other.b[0] += 1
    assert net.W[0, 0] != other.W[0, 0] and net.b[0] != other.b[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_load_roundtrip(tmp_path, dtype):
    net = snt.ShallowReLU(3, 6, bias=2.0, init="symmetric", seed=4, dtype=dtype)
    net.W[0, 0] = 0.123
    net.save(tmp_path / "net.npz")
    back = snt.ShallowReLU.load(tmp_path / "net.npz")
    assert (back.dim, back.width, back.bias, back.init, back.seed, back.dtype) == (3, 6, 2.0, "symmetric", 4, dtype)
    np.testing.assert_array_equal(back.W, net.W)
    np.testing.assert_array_equal(back.b, net.b)
    np.testing.assert_array_equal(back.a, net.a)
    with np.load(tmp_path / "net.npz", allow_pickle=False) as data:
        assert "W" in data.files


def test_load_rejects_other_files(tmp_path):
    np.savez(tmp_path / "x.npz", W=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="not a sparsentk ShallowReLU"):
        snt.ShallowReLU.load(tmp_path / "x.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="path"):
        snt.ShallowReLU.load(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="path"):
        snt.ShallowReLU.load(tmp_path / "missing.npz")


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"dim": 3, "width": 0}, ValueError, "width: expected a positive integer, got 0"),
        ({"dim": 0, "width": 4}, ValueError, "dim"),
        ({"dim": 3, "width": 2.5}, TypeError, "width: expected an integer"),
        ({"dim": 3, "width": 5, "init": "symmetric"}, ValueError, "even width"),
        ({"dim": 3, "width": 4, "bias": float("nan")}, ValueError, "bias: expected a finite number"),
        ({"dim": 3, "width": 4, "bias": float("inf")}, ValueError, "bias"),
        ({"dim": 3, "width": 4, "bias": -1.0}, ValueError, "bias: expected a number >= 0"),
        ({"dim": 3, "width": 4, "init": "xavier"}, ValueError, "init: expected one of"),
        ({"dim": 3, "width": 4, "dtype": np.int32}, TypeError, "dtype"),
        ({"dim": 3, "width": 4, "seed": -3}, ValueError, "seed"),
    ],
)
def test_bad_constructor_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        snt.ShallowReLU(**kwargs)


def test_bad_inputs_to_predict():
    net = snt.ShallowReLU(3, 4, seed=0)
    with pytest.raises(ValueError, match=r"X: expected 3 columns"):
        net.predict(np.ones((2, 4)))
    with pytest.raises(ValueError, match="X: expected finite values"):
        net.predict(np.array([[1.0, np.nan, 0.0]]))
    with pytest.raises(ValueError, match="X: expected a 2-D array"):
        net.predict(np.ones(3))
    with pytest.raises(TypeError, match="X: expected a numeric array"):
        net.predict([["a", "b", "c"]])
    with pytest.raises(ValueError, match="residual: expected length 2"):
        net.gradients(np.ones((2, 3)), np.ones(3))
