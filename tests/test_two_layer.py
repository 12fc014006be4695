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


@pytest.mark.parametrize(("out", "train"), [(1, "first"), (1, "both"), (3, "both"), (3, "first")])
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


# ------------------------------------------------------------------ the compiled activations against mpmath / scipy
def _special_grid(seed):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(-40, 40, 300), rng.uniform(-3, 3, 300), rng.standard_normal(40) * 1e-7,
                           [-38.4, -37.5, -8.0, -1.4142135623730951, -1.0, -0.7518, 1e-300, 1.0, 8.0, 39.0]])


def _mp_reference(act, zs):
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    funcs = {
        "gelu": lambda z: (z * mp.ncdf(z), mp.ncdf(z) + z * mp.npdf(z), mp.ncdf(z) + abs(z) * mp.npdf(z)),
        "softplus": lambda z: (mp.log1p(mp.exp(z)) - mp.log(2), 1 / (1 + mp.exp(-z)), 1),
        "tanh": lambda z: (mp.tanh(z), mp.sech(z) ** 2, 1),
    }[act]
    rows = [funcs(mp.mpf(float(z))) for z in zs]
    return (np.array([float(r[i]) for r in rows]) for i in range(3))


def _activate(act, z, dtype=np.float64):
    """φ(z), φ'(z) through the network's own pass: one neuron with w = 1, b = 0 (so the pre-activation is z)."""
    net = snt.TwoLayer.from_parameters(np.ones((1, 1)), np.ones(1), 0.0, activation=act, dtype=dtype)
    A, D = net._forward(np.asarray(z, dtype=dtype)[:, None])
    return A[:, 0], D[:, 0]


@pytest.mark.parametrize("act", ["gelu", "softplus", "tanh"])
def test_activations_against_mpmath(act):
    """φ and φ' to a few ulps of 40-digit values over |z| ≤ 40 (GeLU's tails included, where Φ is ~1e-300)."""
    z = _special_grid(ACTS.index(act))
    ref_a, ref_d, scale_d = _mp_reference(act, z)
    a, d = _activate(act, z)
    ulp = np.finfo(np.float64).eps
    normal = np.abs(ref_a) > 1e-300
    if act == "softplus":  # log(1 + e^z) - log 2 cancels at z = 0: absolute accuracy there
        assert np.all(np.abs(a - ref_a) <= 2 * ulp * np.maximum(np.abs(ref_a), 1.0))
    else:
        assert np.all(np.abs(a - ref_a)[normal] <= 4 * ulp * np.abs(ref_a[normal]))
        assert np.all(np.abs(a - ref_a)[~normal] <= 1e-300)
    # φ' relative to the size of its terms (GeLU's Φ + zφ cancels near z = -0.75; elsewhere this is relative)
    bound = 8 * ulp * np.maximum(np.abs(ref_d), scale_d * (act == "gelu"))
    ok = np.abs(ref_d) > 1e-300
    assert np.all(np.abs(d - ref_d)[ok] <= bound[ok]), np.max(np.abs(d - ref_d)[ok] / bound[ok])


def test_gelu_against_scipy_ndtr():
    """A second, independent reference: z Φ(z) and Φ(z) + z φ(z) from scipy.special.ndtr (accurate to ~1e-13 in
    the far tail, where it loses the rounding of z²)."""
    from scipy.special import ndtr

    z = np.linspace(-37.0, 37.0, 20001)
    a, d = _activate("gelu", z)
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(a, z * ndtr(z), rtol=1e-12, atol=0)
    np.testing.assert_allclose(d, ndtr(z) + z * pdf, rtol=1e-12, atol=1e-16)


def test_activations_at_special_values():
    z = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 60.0, -60.0])
    expected = {
        "gelu": ([0, 0, np.inf, 0, np.nan, 60, 0], [0.5, 0.5, 1, 0, np.nan, 1, 0]),
        "softplus": ([0, 0, np.inf, -math.log(2), np.nan, 60 - math.log(2), -math.log(2)],
                     [0.5, 0.5, 1, 0, np.nan, 1, math.exp(-60)]),
        "tanh": ([0, 0, 1, -1, np.nan, 1, -1], [1, 1, 0, 0, np.nan, 4 * math.exp(-120), 4 * math.exp(-120)]),
        "relu": ([0, 0, np.inf, 0, np.nan, 60, 0], [1, 1, 1, 0, np.nan, 1, 0]),
    }
    for act, (ea, ed) in expected.items():
        a, d = _activate(act, z)
        np.testing.assert_allclose(a, ea, rtol=1e-15, atol=0, err_msg=act)
        np.testing.assert_allclose(d, ed, rtol=1e-14, atol=0, err_msg=act)


@pytest.mark.parametrize("act", ACTS)
def test_float32_activations_are_float64_values_rounded_once(act):
    """float32 networks: φ, φ' computed in float64 and rounded once; GeLU in float32 arithmetic, within 6 ulps."""
    rng = np.random.default_rng(14)
    X = (3 * unit_rows(rng, 40, 3)).astype(np.float32)
    net32 = snt.TwoLayer(3, 31, activation=act, bias=0.1, seed=2, dtype=np.float32)
    net64 = snt.TwoLayer.from_parameters(net32.W, net32.V, net32.b, activation=act)
    A32, D32 = net32._forward(X)
    A64, D64 = net64._forward(X.astype(np.float64))
    assert A32.dtype == np.float32
    if act != "gelu":
        np.testing.assert_array_equal(A32, A64.astype(np.float32))
        np.testing.assert_array_equal(D32, D64.astype(np.float32))
    else:  # against float64 GeLU of the float32-rounded pre-activations (the float32 arithmetic starts there)
        eps = np.finfo(np.float32).eps
        Z = (X.astype(np.float64) @ net64.W.T - net64.b).astype(np.float32).astype(np.float64)
        A, D = (t.reshape(Z.shape) for t in _activate("gelu", Z.ravel()))
        assert np.all(np.abs(A32 - A) <= 6 * eps * np.abs(A) + 1e-38)
        assert np.all(np.abs(D32 - D) <= 6 * eps * (np.abs(D) + np.abs(Z) * np.exp(-Z * Z / 2)) + 1e-38)


def test_float32_gelu_against_mpmath():
    """GeLU in float32 arithmetic: within 6 float32 ulps of 30-digit values down to its underflow (z ≈ -13.5)."""
    z = _special_grid(7)
    z = np.concatenate([z[np.abs(z) < 15], [-13.4, -12.0, -9.0]]).astype(np.float32)
    ref_a, ref_d, scale_d = _mp_reference("gelu", z.astype(np.float64))
    a, d = _activate("gelu", z, np.float32)
    assert a.dtype == np.float32
    eps = float(np.finfo(np.float32).eps)
    normal = np.abs(ref_a) > np.finfo(np.float32).tiny
    err_a = np.abs(a.astype(np.float64) - ref_a)
    assert np.all(err_a[normal] <= 6 * eps * np.abs(ref_a[normal]))
    assert np.all(err_a[~normal] <= 1e-43)  # subnormal results: a few units of the last place of z Φ(z)
    assert np.all(np.abs(d.astype(np.float64) - ref_d) <= 4 * eps * np.maximum(np.abs(ref_d), scale_d) + 1e-43)


@pytest.mark.parametrize("act", ["gelu", "relu"])
def test_fused_gd_pass_does_not_depend_on_threads(act):
    """The one-pass engine (one output, several neuron blocks, the parallel path) gives the same bits on 1 and 2
    threads, and follows the finite-difference-checked gradients."""
    numba = pytest.importorskip("numba")
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 numba threads")
    from sparsentk import _two_layer_kernels as kernels

    rng = np.random.default_rng(15)
    n, width = 64, kernels.PARALLEL_ENTRIES // 64
    X, y = unit_rows(rng, n, 5), rng.choice([-1.0, 1.0], n) / 8
    net = snt.TwoLayer(5, width, activation=act, bias=0.1, train_bias=True, seed=3)
    lr = 0.5 * net.stable_lr(X)
    expected = {k: getattr(net, k) - lr * g for k, g in net.gradients(X, y).items()}
    runs = []
    previous = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            copy = net.copy()
            h = snt.train(copy, X, y, lr=lr, steps=3)
            runs.append((copy, h))
    finally:
        numba.set_num_threads(previous)
    (one, h1), (two, h2) = runs
    for k in ("W", "V", "b"):
        np.testing.assert_array_equal(getattr(one, k), getattr(two, k))
    np.testing.assert_array_equal(h1.loss, h2.loss)
    np.testing.assert_array_equal(h1.flips, h2.flips)
    step1 = net.copy()
    snt.train(step1, X, y, lr=lr, steps=1)
    for k, value in expected.items():
        np.testing.assert_allclose(getattr(step1, k), value, rtol=1e-12, atol=1e-14)
