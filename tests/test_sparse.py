"""Exact sparse GD against the dense reference (the textbook-checked method) on many random problems."""

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

import sparsentk as snt
from conftest import unit_rows
from gd_oracles import assert_same_iterates, gd_problems, run_pair
from sparsentk.training import ITERATE_FIELDS, METHODS

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_both(X, y, width, bias, lr, steps, init="standard", seed=0, dtype=np.float64):
    return run_pair(X, y, "sparse", width, bias, lr, steps, init=init, seed=seed, dtype=dtype)


def assert_same(dense, sparse, hd, hs):
    assert_same_iterates(dense, sparse, hd, hs, rtol=1e-9, atol=1e-11)


@st.composite
def problems_at_scale(draw):
    """The regime the sparse method exists for: many inputs, wide networks, large biases, moving neurons."""
    n = draw(st.integers(10, 120))
    d = draw(st.integers(2, 8))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    X = unit_rows(rng, n, d)
    if draw(st.booleans()):
        X *= rng.uniform(0.5, 1.5, (n, 1))
    y = rng.uniform(-1, 1, n) + draw(st.sampled_from([0.0, 2.0]))  # a shift makes neurons drift and lists grow
    width = draw(st.sampled_from([64, 256, 1024, 4096]))
    init = "symmetric" if draw(st.booleans()) else "standard"
    bias = draw(st.sampled_from([1.0, 2.0, 2.5, 3.0]))
    lr = draw(st.sampled_from([0.3, 1.0, 3.0, 10.0]))
    return X, y, width, bias, lr, init, seed


def pinned(n, d, width, bias, lr, init="standard", seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    return unit_rows(rng, n, d), rng.uniform(-1, 1, n) + shift, width, bias, lr, init, seed


def check_sparse_equals_dense(problem):
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


@SETTINGS
@given(gd_problems())
@example(pinned(40, 6, 513, 2.0, 2.0))
@example(pinned(40, 3, 64, 3.0, 20.0, init="symmetric"))
def test_sparse_equals_dense_float64(problem):
    check_sparse_equals_dense(problem)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems_at_scale())
@example(pinned(100, 6, 4096, 2.5, 3.0, shift=2.0))
@example(pinned(80, 8, 1024, 3.0, 10.0, init="symmetric"))
@example(pinned(120, 4, 4096, 2.0, 1.0))
def test_sparse_equals_dense_at_scale(problem):
    check_sparse_equals_dense(problem)


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
    hd = snt.train(dense, X, y, lr=0.5, steps=10, method="dense")
    hs = snt.train(sparse, X, y, lr=0.5, steps=10, method="sparse")
    assert hd.active_max[0] == 50
    assert_same(dense, sparse, hd, hs)


def check_float32_run(X, y, net, lr, steps, every=1, band=1e-5, method="sparse"):
    """Train ``net`` (float32) by ``method`` and check it against float64 recomputations of its own iterates:

    - at every checked iterate, the active pairs, the largest active count and the flips lie between the counts of
      pairs whose float64 margin is > ``band`` and ≥ −``band`` (only pairs within float32 rounding of the
      threshold may go either way; few are), and the loss is the float64 loss of the float32 parameters;
    - from every checked iterate to the next, each neuron none of whose pairs lies within the band moved by the
      textbook GD step computed in float64 (a pair missed by an update moves its row by lr/√m·|residual|).

    Exact equality with dense float32 GD is not the oracle: over many steps some pair lands within rounding of the
    threshold, where BLAS and the sparse loop's sums may round to different sides (measured: one pair in 20 steps
    at n = 80, m = 3000). Returns the history."""
    X64, y64 = X.astype(np.float64), y.astype(np.float64)
    m = net.width
    snapshots = {}

    def record(t, n, h):
        if t % every == 0 or t % every == 1 or t == steps:
            snapshots[t] = (n.W.astype(np.float64), n.b.astype(np.float64))

    hs = snt.train(net, X, y, lr=lr, steps=steps, method=method, callback=record)
    Z0 = X64 @ snapshots[0][0].T - snapshots[0][1]
    A0, ambiguous0 = Z0 >= 0, np.abs(Z0) <= band
    ambiguous_total = 0
    for t, (W, b) in sorted(snapshots.items()):
        Z = X64 @ W.T - b
        sure, maybe = Z > band, Z >= -band
        ambiguous = maybe & ~sure
        ambiguous_total += int(ambiguous.sum())
        pairs = hs.active_mean[t] * len(X)
        assert sure.sum() <= pairs + 1e-6 and pairs <= maybe.sum() + 1e-6, t
        assert sure.sum(axis=1).max() <= hs.active_max[t] <= maybe.sum(axis=1).max(), t
        if t > 0:
            unsure = ambiguous | ambiguous0
            certain = np.count_nonzero((sure != A0) & ~unsure)
            assert certain <= hs.flips[t] <= certain + unsure.sum(), t
        r = (np.maximum(Z, 0) @ net.a) / np.sqrt(m) - y64
        assert hs.loss[t] == pytest.approx(0.5 * r @ r, rel=1e-5), t
        if t + 1 in snapshots and t % every == 0:
            W1, b1 = snapshots[t + 1]
            clear = ~ambiguous.any(axis=0)
            Rr = sure * r[:, None]  # residual on the active pairs
            gW = (Rr.T @ X64) * (net.a / np.sqrt(m))[:, None]
            gb = -Rr.sum(axis=0) * net.a / np.sqrt(m)
            np.testing.assert_allclose(W1[clear], (W - lr * gW)[clear], rtol=0, atol=2e-5, err_msg=f"step {t}")
            np.testing.assert_allclose(b1[clear], (b - lr * gb)[clear], rtol=0, atol=2e-5, err_msg=f"step {t}")
    assert ambiguous_total <= 0.001 * len(snapshots) * len(X) * m  # the band is tight
    return hs


def test_float32_matches_a_float64_recomputation_of_its_pattern():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((80, 8)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = rng.uniform(-1, 1, 80).astype(np.float32)
    net = snt.ShallowReLU(8, 3000, bias=2.0, seed=3, dtype=np.float32)
    hs = check_float32_run(X, y, net, 2.0, 20)
    assert hs.flips[-1] > 100 and hs.stats["refreshed"][1:].sum() > 0
    hd = snt.train(snt.ShallowReLU(8, 3000, bias=2.0, seed=3, dtype=np.float32), X, y, lr=2.0, steps=20,
                   method="dense")
    np.testing.assert_allclose(hs.loss, hd.loss, rtol=1e-4)


@pytest.mark.parametrize("bias", [0.0, 1.0])
def test_zero_rows_stay_exact(bias):
    """A zero input has pre-activation −b_r: at B = 0 it starts active for every neuron and leaves as biases rise."""
    rng = np.random.default_rng(6)
    X = unit_rows(rng, 40, 4)
    X[[3, 17, 30]] = 0.0
    y = rng.uniform(-1, 1, 40)
    dense, sparse, hd, hs = run_both(X, y, 400, bias, 1.0, steps=25)
    assert_same(dense, sparse, hd, hs)
    if bias == 0.0:
        assert hd.flips[-1] > 0


def test_auto_gives_the_dense_iterates():
    X, y = snt.data.sphere(80, 5, seed=3)
    net = snt.ShallowReLU(5, 2000, bias=2.5, seed=4)
    auto, dense = net.copy(), net.copy()
    ha = snt.train(auto, X, y, lr=2.0, steps=20, method="auto")
    hd = snt.train(dense, X, y, lr=2.0, steps=20, method="dense")
    assert hd.flips[-1] > 0
    assert_same(dense, auto, hd, ha)


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


LONG_RUNS = [(2.0, 4096), (2.5, 8192), (3.0, 16384)]
#: Every exact training method besides the dense reference is held to the same standard.
OTHER_METHODS = [m for m in ("sparse", "kernel") if m in METHODS]


@pytest.mark.slow
@pytest.mark.parametrize(("bias", "width", "method"), [(b, w, "sparse") for b, w in LONG_RUNS]
                         + [(b, w, m) for b, w in LONG_RUNS[:2] for m in OTHER_METHODS if m != "sparse"])
def test_long_runs_at_large_bias_float64(bias, width, method):
    """P1's regime at scale: n = 200, 150 steps, widths 4096–16384, B = 2–3; every iterate's pattern is the one of
    plain GD, and (sparse method) the run needed both certificates to expire (refreshes and re-examinations)."""
    rng = np.random.default_rng(int(10 * bias))
    X, y = unit_rows(rng, 200, 8), rng.uniform(-1, 1, 200)
    net = snt.ShallowReLU(8, width, bias=bias, seed=1)
    W0, b0 = net.W.copy(), net.b.copy()
    hs = snt.train(net, X, y, lr=1.0, steps=150, method=method)
    expected, W, b = textbook_run(W0, b0, net.a, X, y, 1.0, 150)
    for name in ("active_mean", "active_max", "flips"):
        np.testing.assert_array_equal(getattr(hs, name), expected[name], err_msg=name)
    np.testing.assert_allclose(hs.loss, expected["loss"], rtol=1e-9)
    np.testing.assert_allclose(net.W, W, rtol=0, atol=1e-10)
    np.testing.assert_allclose(net.b, b, rtol=0, atol=1e-10)
    assert hs.flips.max() > 1000 and hs.loss[-1] < 0.9 * hs.loss[0]
    if method == "sparse":
        assert hs.stats["refreshed"][1:].sum() > 100 and hs.stats["reexamined"][1:].sum() > 100


def textbook_run(W, b, a, X, y, lr, steps):
    """Plain full-batch GD from the formulas (paper-notes §1), recording the pattern's counts at every iterate (the
    dense engine at this size costs several times more; this is the same oracle as tests/test_training.py's)."""
    W, b = W.copy(), b.copy()
    scale = a / np.sqrt(len(a))
    out = {name: [] for name in ("loss", "active_mean", "active_max", "flips")}
    A0 = None
    with threadpool_limits(1):  # products with 8 columns: threads only contend
        for t in range(steps + 1):
            Z = X @ W.T
            Z -= b
            A = Z >= 0
            A0 = A if A0 is None else A0
            on = np.flatnonzero(A.any(axis=0))  # neurons without an active input add nothing to f or the gradient
            r = np.maximum(Z[:, on], 0) @ scale[on] - y
            counts = A.sum(axis=1)
            out["loss"].append(0.5 * r @ r)
            out["active_mean"].append(counts.mean())
            out["active_max"].append(counts.max())
            out["flips"].append(np.count_nonzero(A ^ A0))
            if t < steps:
                rX = np.column_stack([r[:, None] * X, r])  # Σ_i r_i 1[..] x_i and Σ_i r_i 1[..] in one product
                G = A[:, on].T.astype(np.float64) @ rX
                W[on] -= lr * G[:, :-1] * scale[on, None]
                b[on] += lr * G[:, -1] * scale[on]
    return out, W, b


@pytest.mark.slow
@pytest.mark.parametrize(("bias", "width", "method"), [(*LONG_RUNS[0], "sparse"), (*LONG_RUNS[2], "sparse")]
                         + [(*LONG_RUNS[0], m) for m in OTHER_METHODS if m != "sparse"])
def test_long_runs_at_large_bias_float32(bias, width, method):
    rng = np.random.default_rng(int(10 * bias))
    X = unit_rows(rng, 200, 8).astype(np.float32)
    y = rng.uniform(-1, 1, 200).astype(np.float32)
    hs = check_float32_run(X, y, snt.ShallowReLU(8, width, bias=bias, seed=1, dtype=np.float32), 1.0, 150,
                           every=15, method=method)
    assert hs.steps == 150 and hs.flips.max() > 1000
    if method == "sparse":
        assert hs.stats["refreshed"][1:].sum() > 100 and hs.stats["reexamined"][1:].sum() > 100


def test_sparse_leaves_the_result_in_the_networks_own_arrays():
    X, y = snt.data.sphere(30, 4, seed=1)
    net = snt.ShallowReLU(4, 300, bias=1.5, seed=2)
    for steps in (3, 4):  # the engine writes each step to the other of two buffers: both parities
        dense, sparse = net.copy(), net.copy()
        W, b = sparse.W, sparse.b
        snt.train(dense, X, y, lr=1.0, steps=steps, method="dense")
        snt.train(sparse, X, y, lr=1.0, steps=steps, method="sparse")
        assert sparse.W is W and sparse.b is b
        np.testing.assert_allclose(sparse.W, dense.W, rtol=1e-9, atol=1e-11)


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
