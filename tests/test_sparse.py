"""Exact sparse GD against the dense reference (the textbook-checked method) on many random problems."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparsentk as snt
from sparsentk.training import ITERATE_FIELDS

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_both(X, y, width, bias, lr, steps, init="standard", seed=0, dtype=np.float64):
    dense = snt.ShallowReLU(X.shape[1], width, bias=bias, init=init, seed=seed, dtype=dtype)
    sparse = dense.copy()
    hd = snt.train(dense, X, y, lr=lr, steps=steps, method="dense")
    hs = snt.train(sparse, X, y, lr=lr, steps=steps, method="sparse")
    return dense, sparse, hd, hs


def assert_same(dense, sparse, hd, hs, rtol=1e-9):
    np.testing.assert_allclose(hs.loss, hd.loss, rtol=rtol, atol=1e-12)
    for name in ("active_mean", "active_max", "flips"):
        np.testing.assert_array_equal(getattr(hs, name), getattr(hd, name), err_msg=name)
    np.testing.assert_allclose(hs.movement_w, hd.movement_w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hs.movement_b, hd.movement_b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sparse.W, dense.W, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(sparse.b, dense.b, rtol=1e-9, atol=1e-11)


@st.composite
def problems(draw):
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * draw(st.sampled_from([1.0, 0.3, 3.0]))
    if draw(st.booleans()):
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    if n > 2 and draw(st.booleans()):
        X[1] = X[0]  # duplicate inputs
    y = rng.uniform(-1, 1, n)
    width = draw(st.sampled_from([1, 2, 7, 64, 513]))
    init = "symmetric" if width % 2 == 0 and draw(st.booleans()) else "standard"
    bias = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]))
    lr = draw(st.sampled_from([0.01, 0.3, 2.0, 20.0]))
    return X, y, width, bias, lr, init, seed


@SETTINGS
@given(problems())
def test_sparse_equals_dense_float64(problem):
    X, y, width, bias, lr, init, seed = problem
    dense, sparse, hd, hs = run_both(X, y, width, bias, lr, steps=15, init=init, seed=seed)
    assert_same(dense, sparse, hd, hs)
    assert hs.method == "sparse"
    for name in ("active_pairs", "candidates", "listed", "computed", "refreshed", "reexamined", "loop_seconds",
                 "exam_seconds"):
        assert hs.stats[name].shape == hs.loss.shape
    stats = hs.stats
    # the active pairs are the dense pattern's; candidates contain them, listed inputs contain the candidates
    np.testing.assert_allclose(stats["active_pairs"], hd.active_mean * X.shape[0], rtol=1e-12)
    assert np.all(stats["active_pairs"] <= stats["candidates"])
    assert np.all(stats["candidates"] <= stats["listed"])
    assert np.all(stats["loop_seconds"][1:] + stats["exam_seconds"][1:] <= hs.seconds + 1e-9)


def test_large_steps_force_many_flips():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = rng.uniform(-1, 1, 60)
    dense, sparse, hd, hs = run_both(X, y, 2000, 1.5, 10.0, steps=40)
    assert hd.flips.max() > 1000 and hs.stats["reexamined"][1:].sum() > 0
    assert_same(dense, sparse, hd, hs)


def test_inputs_exactly_on_the_threshold():
    net = snt.ShallowReLU(3, 50, bias=0.7, seed=1)
    X = np.eye(3)
    net.b[:] = net.W[:, 0]  # w_r·e_1 − b_r = 0 exactly for every neuron: all active at x = e_1
    y = np.array([0.5, -0.5, 0.2])
    dense, sparse = net.copy(), net.copy()
    hd = snt.train(dense, X, y, lr=0.5, steps=10)
    hs = snt.train(sparse, X, y, lr=0.5, steps=10, method="sparse")
    assert hd.active_max[0] == 50
    assert_same(dense, sparse, hd, hs)


def test_float32_matches_a_float64_recomputation_of_its_pattern():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((80, 8)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = rng.uniform(-1, 1, 80).astype(np.float32)
    net = snt.ShallowReLU(8, 3000, bias=2.0, seed=3, dtype=np.float32)
    snapshots = []
    hs = snt.train(net, X, y, lr=2.0, steps=20, method="sparse",
                   callback=lambda t, n, h: snapshots.append((n.W.copy(), n.b.copy())))
    for t, (W, b) in enumerate(snapshots):
        z = X.astype(np.float64) @ W.T.astype(np.float64) - b.astype(np.float64)
        sure_on = (z > 1e-5).sum(axis=1)
        maybe_on = (z >= -1e-5).sum(axis=1)
        assert np.all(sure_on.sum() <= hs.active_mean[t] * 80 + 1e-6)
        assert np.all(hs.active_mean[t] * 80 <= maybe_on.sum() + 1e-6)
    hd = snt.train(snt.ShallowReLU(8, 3000, bias=2.0, seed=3, dtype=np.float32), X, y, lr=2.0, steps=20)
    np.testing.assert_allclose(hs.loss, hd.loss, rtol=1e-4)


def test_auto_picks_sparse_for_large_bias_and_is_deterministic():
    X, y = snt.data.sphere(50, 4, seed=0)
    runs = [snt.train(snt.ShallowReLU(4, 1000, bias=2.5, seed=1), X, y, lr=1.0, steps=10, method="auto")
            for _ in range(2)]
    assert runs[0].method == "sparse"
    for name in ITERATE_FIELDS:
        np.testing.assert_array_equal(getattr(runs[0], name), getattr(runs[1], name))


def test_sparse_divergence_keeps_last_finite_parameters():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((24, 5))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = 1e3 * rng.uniform(-1, 1, 24)
    net = snt.ShallowReLU(5, 50, bias=0.0, seed=2, dtype=np.float32)
    W0 = net.W.copy()
    with pytest.raises(snt.TrainingDiverged) as info:
        snt.train(net, X, y, lr=1e36, steps=50, method="sparse")
    assert len(info.value.history.loss) == 1
    np.testing.assert_array_equal(net.W, W0)


def test_sparse_leaves_the_result_in_the_networks_own_arrays():
    X, y = snt.data.sphere(30, 4, seed=1)
    net = snt.ShallowReLU(4, 300, bias=1.5, seed=2)
    for steps in (3, 4):  # the engine writes each step to the other of two buffers: both parities
        dense, sparse = net.copy(), net.copy()
        W, b = sparse.W, sparse.b
        snt.train(dense, X, y, lr=1.0, steps=steps)
        snt.train(sparse, X, y, lr=1.0, steps=steps, method="sparse")
        assert sparse.W is W and sparse.b is b
        np.testing.assert_allclose(sparse.W, dense.W, rtol=1e-9, atol=1e-11)


def unit_rows(rng, n, d):
    X = rng.standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def drifting_problem():
    """Targets far above f(0): active neurons lower their biases and fire for many more inputs than at t = 0."""
    rng = np.random.default_rng(4)
    X = unit_rows(rng, 200, 6)
    return X, 5.0 + rng.uniform(-1, 1, 200)


def test_lists_that_outgrow_their_slots_move_and_stay_exact():
    X, y = drifting_problem()
    dense, sparse, hd, hs = run_both(X, y, 300, 2.0, 0.1, steps=30)
    assert hd.active_mean[-1] > 4 * hd.active_mean[0] and hs.stats["reexamined"][1:].sum() > 0
    assert_same(dense, sparse, hd, hs)


def test_compacting_the_lists_keeps_the_iterates(monkeypatch):
    from sparsentk import _sparse

    monkeypatch.setattr(_sparse, "COMPACT_MIN", 0)  # compact whenever moved lists leave a tenth of the pool behind
    monkeypatch.setattr(_sparse, "COMPACT_FRACTION", 0.1)
    X, y = drifting_problem()
    compactions = []
    original = _sparse.kern.compact
    monkeypatch.setattr(_sparse.kern, "compact", lambda *args: compactions.append(1) or original(*args))
    dense, sparse, hd, hs = run_both(X, y, 300, 2.0, 0.1, steps=30)
    assert compactions
    assert_same(dense, sparse, hd, hs)


def test_examinations_in_blocks_sized_by_the_inputs_stay_exact(monkeypatch):
    from sparsentk import _sparse

    # a budget of 20 rows of float64 products and int32 lists for 300 inputs: the 100 neurons in several blocks
    monkeypatch.setattr(_sparse, "EXAM_BYTES", 20 * 300 * 12)
    blocks = []
    original = _sparse.kern.list_inputs
    monkeypatch.setattr(_sparse.kern, "list_inputs", lambda Z, *args: blocks.append(len(Z)) or original(Z, *args))
    rng = np.random.default_rng(5)
    X = unit_rows(rng, 300, 5)
    y = rng.uniform(-1, 1, 300)
    dense, sparse, hd, hs = run_both(X, y, 100, 1.0, 1.0, steps=20)
    assert max(blocks) < 100
    assert_same(dense, sparse, hd, hs)
