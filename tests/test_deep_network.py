"""DeepReLU: the finite-width NTK against torch.func Jacobians, the PyTorch twin, files, reproducibility, bad input."""

import math

import numpy as np
import pytest

import sparsentk as snt

torch = pytest.importorskip("torch")
from torch.func import functional_call, jacrev  # noqa: E402


def unit(rng, n, d):
    X = rng.standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def jacobian_ntk(net, X, Y=None, layers=None):
    """Θ = J Jᵀ over the trainable parameters of the PyTorch twin (torch.func.jacrev), float64."""
    module = net.to_torch()
    params = {k: p.detach().double() for k, p in module.named_parameters() if p.requires_grad}
    module = module.double()

    def jac(A):
        return jacrev(lambda p: functional_call(module, p, (torch.tensor(A, dtype=torch.float64),)))(params)

    JX = jac(X)
    JY = JX if Y is None else jac(Y)
    K = 0.0
    for name in params:
        layer = int(name.split(".")[1]) + 1  # weights.i / biases.i belong to layer i + 1 (the last weight: output)
        if layers is not None and layer not in layers:
            continue
        a, b = JX[name].reshape(len(X), -1), JY[name].reshape(JY[name].shape[0], -1)
        K = K + a @ b.T
    return np.asarray(K)


@pytest.mark.parametrize("depth", [0, 1, 3])
@pytest.mark.parametrize("train_bias", [True, False])
def test_empirical_ntk_matches_torch_jacobians(depth, train_bias):
    rng = np.random.default_rng(depth)
    X = unit(rng, 6, 4)
    net = snt.DeepReLU(4, 24, depth, 0.7, train_bias=train_bias, seed=3)
    K = snt.empirical_ntk(net, X)
    ref = jacobian_ntk(net, X)
    np.testing.assert_allclose(K, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    assert np.array_equal(K, K.T)


def test_subsets_of_layers_cross_kernels_and_linear():
    rng = np.random.default_rng(10)
    X, Y = unit(rng, 5, 4), unit(rng, 3, 4)
    net = snt.DeepReLU(4, 20, 3, 1.0, seed=4)
    for layers in ([1], [4], [2, 3]):
        np.testing.assert_allclose(snt.empirical_ntk(net, X, layers=layers), jacobian_ntk(net, X, layers=layers),
                                   rtol=0, atol=1e-12)
    np.testing.assert_allclose(snt.empirical_ntk(net, X, Y), jacobian_ntk(net, X, Y), rtol=0, atol=1e-12)
    lin = snt.DeepReLU(4, 16, 2, 0.5, activation="linear", seed=5)
    np.testing.assert_allclose(snt.empirical_ntk(lin, X), jacobian_ntk(lin, X), rtol=0, atol=1e-12)
    f32 = snt.DeepReLU(4, 16, 2, 0.5, seed=5, dtype=np.float32)
    K32 = snt.empirical_ntk(f32, X)
    assert K32.dtype == np.float64
    np.testing.assert_allclose(K32, jacobian_ntk(f32, X), rtol=0, atol=1e-5)


def test_predict_matches_torch_and_a_plain_forward():
    rng = np.random.default_rng(11)
    X = unit(rng, 7, 5)
    B = 0.5
    net = snt.DeepReLU(5, 32, 2, B, seed=6)
    c = snt.theory.variance_preserving_scale(B)
    W1, W2, w = net.weights
    h1 = np.maximum(X @ W1.T - B, 0)
    h2 = np.maximum(np.sqrt(c / 32) * h1 @ W2.T - B, 0)
    np.testing.assert_allclose(net.predict(X), np.sqrt(c / 32) * h2 @ w, rtol=1e-13)
    module = net.to_torch(device="cpu")
    assert next(module.parameters()).device.type == "cpu" and next(module.parameters()).dtype == torch.float64
    out = module(torch.tensor(X)).detach().numpy()
    np.testing.assert_allclose(out, net.predict(X), rtol=1e-13)
    frozen = snt.DeepReLU(5, 8, 2, train_bias=False, seed=1).to_torch()
    assert all(not p.requires_grad for name, p in frozen.named_parameters() if name.startswith("biases"))
    assert snt.DeepReLU(5, 8, 0, seed=1).predict(X).shape == (7,)


def test_reproducible_copy_save_load(tmp_path):
    a = snt.DeepReLU(3, 8, 2, 1.0, seed=7)
    b = snt.DeepReLU(3, 8, 2, 1.0, seed=7)
    c = snt.DeepReLU(3, 8, 2, 1.0, seed=7, dtype=np.float32)
    for wa, wb, wc in zip(a.weights, b.weights, c.weights, strict=True):
        assert np.array_equal(wa, wb) and np.array_equal(wa.astype(np.float32), wc)
    d = a.copy()
    d.weights[0][0, 0] += 1.0
    assert a.weights[0][0, 0] != d.weights[0][0, 0]
    path = tmp_path / "net.npz"
    a.save(path)
    e = snt.DeepReLU.load(path)
    X = np.eye(3)
    assert np.array_equal(e.predict(X), a.predict(X)) and repr(e) == repr(a)
    # a tampered file is refused
    data = dict(np.load(path))
    data["weight1"] = data["weight1"][:, :3]
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(ValueError, match="path: malformed"):
        snt.DeepReLU.load(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a file")
    with pytest.raises(ValueError, match="path"):
        snt.DeepReLU.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", format=np.array("something else"))
    with pytest.raises(ValueError, match="not a sparsentk DeepReLU"):
        snt.DeepReLU.load(tmp_path / "other.npz")


def test_bad_inputs():
    with pytest.raises(ValueError, match="width"):
        snt.DeepReLU(3, 0, 2)
    with pytest.raises(ValueError, match="depth"):
        snt.DeepReLU(3, 4, -1)
    with pytest.raises(ValueError, match="bias"):
        snt.DeepReLU(3, 4, 2, -0.5)
    tiny = snt.DeepReLU(3, 4, 2, 0.001)  # any threshold is a network; c_B from the closed form (M2)
    assert abs(tiny.scale * ((1 + 1e-6) * 0.5 * math.erfc(0.001 / math.sqrt(2))
                             - 0.001 * math.exp(-5e-7) / math.sqrt(2 * math.pi)) - 1) <= 1e-14
    with pytest.raises(ValueError, match="activation"):
        snt.DeepReLU(3, 4, 2, activation="tanh")
    with pytest.raises(TypeError, match="train_bias"):
        snt.DeepReLU(3, 4, 2, train_bias=1)
    with pytest.raises(TypeError, match="dtype"):
        snt.DeepReLU(3, 4, 2, dtype=np.int32)
    net = snt.DeepReLU(3, 4, 2, seed=0)
    with pytest.raises(ValueError, match="X"):
        net.predict(np.ones((2, 4)))
    with pytest.raises(ValueError, match="X"):
        snt.empirical_ntk(net, np.ones((2, 4)))
    with pytest.raises(ValueError, match="Y"):
        snt.empirical_ntk(net, np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="layers"):
        snt.empirical_ntk(net, np.ones((2, 3)), layers=[4])
    with pytest.raises(ValueError, match="layers"):
        snt.empirical_ntk(snt.ShallowReLU(3, 4, seed=0), np.ones((2, 3)), layers=[1])
    with pytest.raises(TypeError, match="net"):
        snt.empirical_ntk(object(), np.ones((2, 3)))
