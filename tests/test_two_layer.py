"""TwoLayer: gradients and NTK against finite differences and torch.func, GD against independent references,
nested initializations, bad input."""

import math

import numpy as np
import pytest

import sparsentk as snt
from sparsentk.two_layer import DERIVATIVE_BOUNDS, kernel_checkpoints

ACTS = ("gelu", "softplus", "tanh", "relu")


def unit_rows(rng, n, d):
    X = rng.standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def loss_numpy(W, V, b, X, Y, act):
    """½‖Vφ(XWᵀ − b) − Y‖² written out independently of the package."""
    Z = X @ W.T - b
    phi = {
        "gelu": lambda z: z * 0.5 * np.array([math.erfc(-v / math.sqrt(2)) for v in z.ravel()]).reshape(z.shape),
        "softplus": lambda z: np.logaddexp(0.0, z) - math.log(2.0),
        "tanh": np.tanh,
        "relu": lambda z: np.maximum(z, 0.0),
    }[act]
    return 0.5 * float(np.sum((phi(Z) @ V.T - Y) ** 2))


@pytest.mark.parametrize("act", ACTS)
def test_gradients_match_finite_differences(act):
    rng = np.random.default_rng(0)
    X, Y = unit_rows(rng, 6, 3), rng.standard_normal((6, 2))
    net = snt.TwoLayer(3, 5, 2, activation=act, bias=0.3, train="both", train_bias=True, seed=1)
    grads = net.gradients(X, Y)
    eps = 1e-6
    for name in ("W", "V", "b"):
        P = getattr(net, name)
        fd = np.zeros_like(P)
        for idx in np.ndindex(P.shape):
            params = {"W": net.W, "V": net.V, "b": net.b}
            plus, minus = P.copy(), P.copy()
            plus[idx] += eps
            minus[idx] -= eps
            params[name] = plus
            lp = loss_numpy(**params, X=X, Y=Y, act=act)
            params[name] = minus
            lm = loss_numpy(**params, X=X, Y=Y, act=act)
            fd[idx] = (lp - lm) / (2 * eps)
        np.testing.assert_allclose(grads[name], fd, atol=1e-7, err_msg=f"{act} {name}")


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize(("train", "train_bias"), [("both", False), ("first", True), ("last", False)])
def test_ntk_matches_torch_func_jacobian(act, train, train_bias):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    X = unit_rows(rng, 7, 4)
    net = snt.TwoLayer(4, 6, 2, activation=act, bias=0.2, train=train, train_bias=train_bias, seed=3)
    phi = {"gelu": torch.nn.functional.gelu, "tanh": torch.tanh, "relu": torch.relu,
           "softplus": lambda z: torch.nn.functional.softplus(z) - math.log(2.0)}[act]
    Xt = torch.tensor(X)

    def f(W, V, b):
        return (phi(Xt @ W.T - b) @ V.T).reshape(-1)  # index i*out + k

    names = [k for k, on in (("W", train != "last"), ("V", train != "first"), ("b", train_bias)) if on]
    params = {k: torch.tensor(getattr(net, k)) for k in "WVb"}

    def g(*trained):
        return f(**{**params, **dict(zip(names, trained, strict=True))})

    jac = torch.func.jacrev(g, argnums=tuple(range(len(names))))(*(params[k] for k in names))
    J = torch.cat([j.reshape(14, -1) for j in jac], dim=1).numpy()
    full = net.ntk(X, full=True)
    np.testing.assert_allclose(full, J @ J.T, atol=1e-12)
    blocks = (J @ J.T).reshape(7, 2, 7, 2)
    np.testing.assert_allclose(net.ntk(X), 0.5 * (blocks[:, 0, :, 0] + blocks[:, 1, :, 1]), atol=1e-12)
    np.testing.assert_allclose(snt.empirical_ntk(net, X), net.ntk(X), atol=1e-15)
    # cross kernel: the rows of the full kernel's first 3 inputs against the last 4
    np.testing.assert_allclose(net.ntk(X[:3], X[3:], full=True), (J @ J.T)[:6, 6:], atol=1e-12)


def test_ntk_matches_finite_difference_jacobian_one_output():
    rng = np.random.default_rng(4)
    X = unit_rows(rng, 5, 3)
    net = snt.TwoLayer(3, 4, seed=5)
    theta = np.concatenate([net.W.ravel(), net.V.ravel()])

    def outputs(t):
        return net.from_parameters(t[:12].reshape(4, 3), t[12:].reshape(1, 4)).predict(X)

    eps = 1e-6
    J = np.stack([(outputs(theta + eps * e) - outputs(theta - eps * e)) / (2 * eps) for e in np.eye(len(theta))], 1)
    np.testing.assert_allclose(net.ntk(X), J @ J.T, atol=1e-8)


def test_gd_step_is_torch_autograd_step():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    X, y = unit_rows(rng, 20, 4), rng.choice([-1.0, 1.0], 20) / math.sqrt(20)
    net = snt.TwoLayer(4, 30, seed=7)
    W, V = (torch.tensor(a, requires_grad=True) for a in (net.W, net.V))
    lr = net.stable_lr(X)
    losses = []
    for _ in range(5):
        f = (torch.nn.functional.gelu(torch.tensor(X) @ W.T) @ V.T).reshape(-1)
        loss = 0.5 * (f - torch.tensor(y)).pow(2).sum()
        losses.append(float(loss.detach()))
        loss.backward()
        with torch.no_grad():
            W -= lr * W.grad
            V -= lr * V.grad
            W.grad = V.grad = None
    history = snt.train(net, X, y, lr=lr, steps=5)
    np.testing.assert_allclose(history.loss[:5], losses, rtol=1e-12)
    np.testing.assert_allclose(net.W, W.detach().numpy(), atol=1e-13)


def test_relu_with_bias_is_p1_network():
    """P1's network as a TwoLayer (ReLU, thresholds B, output a/√m, W and b trained) follows ShallowReLU's GD."""
    X, y = snt.data.sphere(30, 5, seed=0)
    ref = snt.ShallowReLU(5, 64, 1.0, seed=3)
    net = snt.TwoLayer.from_parameters(ref.W, ref.a / 8.0, ref.b, activation="relu", train="first", train_bias=True)
    np.testing.assert_allclose(net.ntk(X), snt.empirical_ntk(ref, X), atol=1e-13)
    h_ref = snt.train(ref.copy(), X, y, lr=0.3, steps=30, method="dense")
    h = snt.train(net, X, y, lr=0.3, steps=30)
    np.testing.assert_allclose(h.loss, h_ref.loss, rtol=1e-10)
    np.testing.assert_array_equal(h.flips, h_ref.flips)
    np.testing.assert_allclose(h.movement_b, h_ref.movement_b, atol=1e-12)


def test_last_layer_gd_is_linear_regression_on_features():
    """With W fixed, GD on V is GD on least squares: e(t) = (I - ηAAᵀ)ᵗ e(0) exactly."""
    rng = np.random.default_rng(8)
    X, y = unit_rows(rng, 12, 5), rng.standard_normal(12)
    net = snt.TwoLayer(5, 40, activation="tanh", train="last", seed=9)
    A = net.features(X)
    e = net.predict(X) - y
    lr = net.stable_lr(X, c=1.0)
    np.testing.assert_allclose(lr, 1.0 / np.linalg.eigvalsh(A @ A.T)[-1], rtol=1e-10)
    h = snt.train(net, X, y, lr=lr, steps=200)
    M = np.eye(12) - lr * A @ A.T
    expected = [0.5 * float(e @ e)]
    for _ in range(200):
        e = M @ e
        expected.append(0.5 * float(e @ e))
    np.testing.assert_allclose(h.loss, expected, rtol=1e-9)
    assert h.stats["movement_W"][-1] == 0.0


def test_history_movement_and_kernel_fields():
    rng = np.random.default_rng(10)
    X, y = unit_rows(rng, 16, 4), rng.standard_normal(16) / 4
    net = snt.TwoLayer(4, 24, seed=11)
    W0, V0, K0 = net.W.copy(), net.V.copy(), net.ntk(X)
    h = snt.train(net, X, y, lr=net.stable_lr(X), steps=20)
    assert math.isclose(h.stats["movement_W"][-1], np.linalg.norm(net.W - W0) / np.linalg.norm(W0), rel_tol=1e-10)
    assert math.isclose(h.stats["movement_V"][-1], np.linalg.norm(net.V - V0) / np.linalg.norm(V0), rel_tol=1e-10)
    assert math.isclose(h.movement_w[-1], np.linalg.norm(net.W - W0, axis=1).max(), rel_tol=1e-10)
    K = h.stats["kernel_change"]
    assert [t for t in range(21) if not np.isnan(K[t])] == kernel_checkpoints(20) == [0, 1, 4, 16, 20]
    assert math.isclose(K[-1], np.linalg.norm(net.ntk(X) - K0) / np.linalg.norm(K0), rel_tol=1e-10)
    assert math.isclose(h.stats["relative_loss"][0], 2 * h.loss[0] / float(y @ y), rel_tol=1e-12)


def test_stable_lr_is_c_over_top_eigenvalue():
    rng = np.random.default_rng(12)
    X = unit_rows(rng, 9, 3)
    net = snt.TwoLayer(3, 10, 3, seed=1)
    assert math.isclose(net.stable_lr(X, c=0.7), 0.7 / np.linalg.eigvalsh(net.ntk(X, full=True))[-1], rel_tol=1e-10)


def test_nested_initializations():
    small, large = snt.TwoLayer(5, 7, 2, seed=4), snt.TwoLayer(5, 40, 2, seed=4)
    np.testing.assert_array_equal(small.W, large.W[:7])
    # V's scale follows the width (ω₂ = 1/(ω₁√(d₀d₁))); the standard-normal draws are shared
    np.testing.assert_allclose(small.V / small.omega2, large.V[:, :7] / large.omega2, rtol=1e-14)
    assert math.isclose(small.omega2, 1 / math.sqrt(5 * 7))
    again = snt.TwoLayer(5, 7, 2, seed=4, omega1=2.0, omega2=0.1)
    np.testing.assert_allclose(again.W, 2.0 * small.W)
    assert not np.allclose(snt.TwoLayer(5, 7, 2, seed=5).W, small.W)


def test_float32_network_trains():
    X, y = snt.data.sphere(20, 4, seed=1)
    net = snt.TwoLayer(4, 32, seed=0, dtype=np.float32)
    h = snt.train(net, X, y, lr=net.stable_lr(X), steps=50)
    assert net.W.dtype == np.float32 and h.loss[-1] < h.loss[0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": 0}, "width"),
        ({"activation": "sigmoid"}, "activation"),
        ({"train": "middle"}, "train"),
        ({"omega1": -1.0}, "omega1"),
        ({"omega2": 0.0}, "omega2"),
        ({"train": "last", "train_bias": True}, "train_bias"),
        ({"train_bias": "yes"}, "train_bias"),
        ({"bias": float("nan")}, "bias"),
        ({"dtype": np.int32}, "dtype"),
    ],
)
def test_bad_construction(kwargs, match):
    args = {"dim": 3, "width": 4, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        snt.TwoLayer(**args)


def test_bad_training_input():
    net = snt.TwoLayer(3, 4, 2, seed=0)
    X = np.ones((5, 3))
    with pytest.raises(ValueError, match="y: expected shape \\(5, 2\\)"):
        snt.train(net, X, np.ones(5), lr=0.1, steps=1)
    with pytest.raises(ValueError, match="X: expected 3 columns"):
        snt.train(net, np.ones((5, 2)), np.ones((5, 2)), lr=0.1, steps=1)
    with pytest.raises(ValueError, match="method"):
        snt.train(net, X, np.ones((5, 2)), lr=0.1, steps=1, method="sparse")
    with pytest.raises(ValueError, match="lr"):
        snt.train(net, X, np.ones((5, 2)), lr=-1.0, steps=1)
    with pytest.raises(ValueError, match="y: expected finite"):
        snt.train(net, X, np.full((5, 2), np.nan), lr=0.1, steps=1)
    with pytest.raises(ValueError, match="V"):
        snt.TwoLayer.from_parameters(np.ones((4, 3)), np.ones((1, 5)))
    with pytest.raises(ValueError, match="c"):
        net.stable_lr(X, c=0.0)
    with pytest.raises(ValueError, match="layers"):
        snt.empirical_ntk(net, X, layers=[1])


@pytest.mark.parametrize("act", ["gelu", "softplus", "tanh"])
def test_derivative_bounds_against_a_fine_grid(act):
    z = np.linspace(-12, 12, 400001)
    phi = {"gelu": lambda t: t * 0.5 * (1 + np.vectorize(math.erf)(t / math.sqrt(2))),
           "softplus": lambda t: np.logaddexp(0.0, t) - math.log(2.0), "tanh": np.tanh}[act](z)
    d1 = np.gradient(phi, z)
    d2 = np.gradient(d1, z)
    bound1, bound2 = DERIVATIVE_BOUNDS[act]
    assert np.abs(d1).max() == pytest.approx(bound1, rel=1e-4)
    assert np.abs(d2).max() == pytest.approx(bound2, rel=1e-3)
    assert snt.TwoLayer(2, 3, activation=act).derivative_bounds == (bound1, bound2)


@pytest.mark.parametrize(("out", "train"), [(1, "first"), (3, "both"), (3, "first")])
def test_gd_step_follows_the_finite_difference_checked_gradients(out, train):
    """One engine step equals θ − η∇L with the gradients checked above (both engine paths: one and several outputs)."""
    rng = np.random.default_rng(13)
    X, Y = unit_rows(rng, 10, 3), rng.standard_normal((10, out))
    net = snt.TwoLayer(3, 7, out, activation="softplus", bias=0.2, train=train, train_bias=True, seed=2)
    grads = net.gradients(X, Y)
    expected = {k: getattr(net, k) - 0.05 * g for k, g in grads.items()}
    snt.train(net, X, Y if out > 1 else Y[:, 0], lr=0.05, steps=1)
    for k, value in expected.items():
        np.testing.assert_allclose(getattr(net, k), value, atol=1e-13)
