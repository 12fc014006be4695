"""Exact GD in function space (method="kernel") against the dense reference, on many random problems.

The oracle is dense GD (``method="dense"``: BLAS products over the whole pattern, itself checked against torch
autograd in tests/test_training.py) and, for the drift, a float64 recomputation of the outputs from the weights.
"""

import functools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import sparsentk as snt
from gd_oracles import assert_same_iterates, gd_problems, run_pair
from sparsentk import _function_space
from sparsentk.training import ITERATE_FIELDS

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_both(X, y, width, bias, lr, steps, init="standard", seed=0, dtype=np.float64, net=None):
    return run_pair(X, y, "kernel", width, bias, lr, steps, init=init, seed=seed, dtype=dtype, net=net,
                    diverge_factor=None)


def assert_same(dense, kernel, hd, hk):
    """The acceptance: loss to 1e-9 relative, identical counts and flips per iterate, W and b to 1e-8."""
    assert_same_iterates(dense, kernel, hd, hk, rtol=1e-8, atol=1e-10)


# skewed to n ≥ 10 and width ≥ 64; lr up to and past the stability edge 2/λ_max(H) ≈ 2/(n·fraction·(1 + x·x))
problems = functools.partial(gd_problems, n=st.one_of(st.integers(10, 48), st.integers(10, 48), st.integers(1, 9)),
                             widths=(64, 64, 256, 1000, 7, 2), biases=(0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0),
                             antipodal=True)


def _pinned(n, d, width, bias, lr, init, seed, unit=True, dup=False, anti=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if unit:
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    if dup:
        X[1] = X[0]
    if anti:
        X[2] = -X[0]
    return X, rng.uniform(-1, 1, n), width, bias, lr, init, seed


@SETTINGS
@given(problems())
@example(_pinned(40, 5, 1000, 1.5, 2.0, "standard", 1))
@example(_pinned(30, 4, 256, 0.0, 0.3, "symmetric", 2, dup=True, anti=True))
@example(_pinned(20, 3, 1000, 3.0, 20.0, "standard", 3, unit=False))
@example(_pinned(48, 6, 256, 2.5, 20.0, "symmetric", 4, anti=True))
def test_kernel_equals_dense_float64(problem):
    X, y, width, bias, lr, init, seed = problem
    dense, kernel, hd, hk = run_both(X, y, width, bias, lr, steps=12, init=init, seed=seed)
    assert hk.method == "kernel"
    assert_same(dense, kernel, hd, hk)
    stats = hk.stats
    if hk.steps == 0:  # stopped at the first step (every pair lost), as dense did
        return
    for name in ("crossings", "due", "updated", "renewed", "renewed_from_E", "reexamined", "drift", "fallback"):
        assert stats[name].shape == hk.loss.shape
    own = np.flatnonzero(stats["fallback"] == 0)[1:]  # steps of this engine (a hand-over to sparse may follow)
    assert np.all(stats["updated"][own] + stats["renewed"][own] + stats["renewed_from_E"][own]
                  + stats["reexamined"][own] <= stats["due"][own])


def crossing_problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, rng.uniform(-1, 1, 60)


def test_hundreds_of_crossings_give_the_dense_trajectory():
    X, y = crossing_problem()
    dense, kernel, hd, hk = run_both(X, y, 2000, 1.5, 10.0, steps=40)
    crossings = hk.stats["crossings"][1:]
    assert crossings.max() > 1000 and crossings.sum() > 10_000  # thousands of pairs cross at a step
    assert hd.flips.max() > 1000
    assert_same(dense, kernel, hd, hk)


def test_inputs_exactly_on_the_threshold():
    net = snt.ShallowReLU(3, 50, bias=0.7, seed=1)
    X = np.eye(3)
    net.b[:] = net.W[:, 0]  # w_r·e_1 − b_r = 0 exactly for every neuron: all active at x = e_1
    y = np.array([0.5, -0.5, 0.2])
    dense, kernel, hd, hk = run_both(X, y, 50, 0.7, 0.5, steps=10, net=net)
    assert hd.active_max[0] == 50
    assert_same(dense, kernel, hd, hk)


def test_zero_rows_sit_on_the_threshold_at_bias_zero():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((25, 4))
    X[3] = 0.0  # z = −b_r = 0 for every neuron at t = 0
    y = rng.uniform(-1, 1, 25)
    dense, kernel, hd, hk = run_both(X, y, 300, 0.0, 0.2, steps=15)
    assert_same(dense, kernel, hd, hk)


def test_mid_run_fallback_to_the_sparse_engine_stays_exact(monkeypatch):
    monkeypatch.setattr(_function_space, "FALLBACK_FRACTION", 0.0)  # every step counts as busy
    monkeypatch.setattr(_function_space, "FALLBACK_PATIENCE", 4)
    X, y = crossing_problem()
    dense, kernel, hd, hk = run_both(X, y, 800, 1.5, 3.0, steps=20)
    switched = hk.stats["fallback"]
    assert switched[:5].max() == 0 and switched[-1] == 1  # kernel for the first steps, sparse afterwards
    assert_same(dense, kernel, hd, hk)


def test_float32_drift_over_2000_steps_is_reported_and_bounded(monkeypatch):
    monkeypatch.setattr(_function_space, "FALLBACK_FRACTION", 1.1)  # this engine throughout (no hand-over)
    rng = np.random.default_rng(7)
    n, d = 40, 6
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = rng.uniform(-1, 1, n)
    net = snt.ShallowReLU(d, 2000, bias=1.5, seed=5, dtype=np.float32)
    h = snt.train(net, X.astype(np.float32), y.astype(np.float32), lr=2.0, steps=2000, method="kernel")
    every = _function_space.RESYNC_EVERY
    drift = h.stats["drift"]
    recorded = np.flatnonzero(np.isfinite(drift))
    np.testing.assert_array_equal(recorded, np.arange(every, 2001, every))
    # independent check: the outputs of the final float32 weights, recomputed in float64, against the loss
    Z = X @ net.W.T.astype(np.float64) - net.b.astype(np.float64)
    f = np.maximum(Z, 0) @ net.a.astype(np.float64) / math.sqrt(net.width)
    loss_weights = 0.5 * float(np.sum((f - y) ** 2))
    # float32 weights round by ε‖w‖ ≈ 1e-7·3 per update; f sums ~width·fraction of them /√m: drift ~1e-6
    assert drift[recorded].max() < 1e-5  # measured 1.2e-6 at most
    assert abs(loss_weights - h.loss[-1]) <= 1e-4 * max(h.loss[-1], 1e-3)
    assert h.loss[-1] < 0.1 * h.loss[0]


def test_float32_follows_dense_float32_closely():
    X, y = crossing_problem()
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    net = snt.ShallowReLU(5, 1500, bias=2.0, seed=3, dtype=np.float32)
    hd = snt.train(net.copy(), X32, y32, lr=2.0, steps=30, method="dense")
    hk = snt.train(net.copy(), X32, y32, lr=2.0, steps=30, method="kernel")
    np.testing.assert_allclose(hk.loss, hd.loss, rtol=1e-4)


def test_divergence_raises_at_the_dense_step_and_keeps_the_last_parameters():
    X, y = crossing_problem()
    net = snt.ShallowReLU(5, 300, bias=1.0, seed=2)
    dense, kernel = net.copy(), net.copy()
    errors = []
    for model, method in ((dense, "dense"), (kernel, "kernel")):
        with pytest.raises(snt.TrainingDiverged) as info:
            snt.train(model, X, 1e3 * y, lr=50.0, steps=200, method=method)
        errors.append(info.value.history)
    hd, hk = errors
    assert hk.steps == hd.steps > 0
    np.testing.assert_allclose(hk.loss, hd.loss, rtol=1e-9)
    np.testing.assert_allclose(kernel.W, dense.W, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(kernel.b, dense.b, rtol=1e-8, atol=1e-10)


def test_overflow_in_float32_keeps_the_initial_parameters():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((24, 5))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = 1e3 * rng.uniform(-1, 1, 24)
    net = snt.ShallowReLU(5, 50, bias=0.0, seed=2, dtype=np.float32)
    W0, b0 = net.W.copy(), net.b.copy()
    with pytest.raises(snt.TrainingDiverged) as info:
        snt.train(net, X, y, lr=1e36, steps=50, method="kernel")
    assert len(info.value.history.loss) == 1
    np.testing.assert_array_equal(net.W, W0)
    np.testing.assert_array_equal(net.b, b0)


def test_callback_sees_the_current_weights_and_progress_runs():
    X, y = crossing_problem()
    net = snt.ShallowReLU(5, 400, bias=1.5, seed=4)
    seen = {}
    for method in ("dense", "kernel"):
        snaps = []
        snt.train(net.copy(), X, y, lr=1.0, steps=8, method=method, progress=method == "kernel",
                  callback=lambda t, n, h, snaps=snaps: snaps.append((t, n.W.copy(), n.b.copy(), h.loss[t])))
        seen[method] = snaps
    for (t1, W1, b1, l1), (t2, W2, b2, l2) in zip(seen["dense"], seen["kernel"], strict=True):
        assert t1 == t2
        np.testing.assert_allclose(W2, W1, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(b2, b1, rtol=1e-9, atol=1e-12)
        assert l2 == pytest.approx(l1, rel=1e-9)


def test_result_lands_in_the_networks_own_arrays_and_is_deterministic():
    X, y = crossing_problem()
    net = snt.ShallowReLU(5, 500, bias=2.0, seed=2)
    runs = []
    for _ in range(2):
        model = net.copy()
        W, b = model.W, model.b
        runs.append(snt.train(model, X, y, lr=1.0, steps=10, method="kernel"))
        assert model.W is W and model.b is b
    for name in ITERATE_FIELDS:
        np.testing.assert_array_equal(getattr(runs[0], name), getattr(runs[1], name))


def test_kernel_product_is_eta_H_e_from_counts_and_does_not_depend_on_the_parts():
    from sparsentk import _function_space_kernels as fkern

    rng = np.random.default_rng(3)
    n, m, lr = 37, 500, 0.7
    X = rng.standard_normal((n, 5))
    A = rng.random((m, n)) < 0.2  # an activation pattern, neurons × inputs
    C = (A.T.astype(np.int64) @ A.astype(np.int64)).astype(np.int32)
    e = rng.standard_normal(n)
    H = np.zeros((n, n))  # textbook H_A = (1/m) Σ_r (x_i·x_j + 1) 1[r active on i and j]
    for r in range(m):
        on = np.flatnonzero(A[r])
        H[np.ix_(on, on)] += X[on] @ X[on].T + 1.0
    H /= m
    outs = []
    for parts in (1, 3, 8):
        out = np.empty(n)
        fkern.kernel_product(X @ X.T + 1.0, C, e, -lr / m, out, parts)
        outs.append(out)
    np.testing.assert_allclose(outs[0], -lr * H @ e, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_auto_rule_picks_kernel_when_few_neurons_move_per_step():
    X, y = snt.data.sphere(40, 8, seed=0)
    small_steps = snt.train(snt.ShallowReLU(8, 4000, bias=2.0, seed=1), X, y, lr=0.02, steps=2, method="auto")
    large_steps = snt.train(snt.ShallowReLU(8, 4000, bias=2.0, seed=1), X, y, lr=5.0, steps=2, method="auto")
    narrow = snt.train(snt.ShallowReLU(8, 100, bias=2.0, seed=1), X, y, lr=0.02, steps=2, method="auto")
    dense = snt.train(snt.ShallowReLU(8, 4000, bias=0.0, seed=1), X, y, lr=0.02, steps=2, method="auto")
    assert (small_steps.method, large_steps.method, narrow.method, dense.method) == ("kernel", "sparse", "sparse",
                                                                                    "dense")
    # the due-fraction estimate against a count: neurons brought up to date or renewed at the first steps
    net = snt.ShallowReLU(8, 4000, bias=2.0, seed=1)
    h = snt.train(net, X, y, lr=5.0, steps=3, method="kernel")
    measured = float(np.nanmean(h.stats["due"][1:])) / 4000
    estimate = _function_space.due_fraction(X, y, 2.0, 4000, 5.0)
    assert estimate / 4 <= measured <= 1.0  # an estimate of the order of magnitude, not a bound
    # width · fraction · dim against AUTO_KERNEL_RATIO · n, and the n × n arrays against the memory
    assert _function_space.prefers_kernel(2048, 128, 2**18, 0.0062, 0.01)
    assert not _function_space.prefers_kernel(2048, 128, 2**18, 0.0062, 0.5)
    assert not _function_space.prefers_kernel(2048, 128, 2**12, 0.0062, 0.01)
    assert not _function_space.prefers_kernel(10**6, 128, 2**30, 0.0062, 0.0)  # 20 TB of n × n arrays


def test_convergence_width_axis_puts_each_slope_beside_its_own_kernel():
    from sparsentk.experiments.convergence import convergence_study

    study = convergence_study(biases=(0.0, 1.5), width=64, n=12, dim=4, steps=300, seeds=(0,), widths=(64, 1024))
    axis = study["width_axis"]
    assert [row["width"] for row in axis["per_width"]] == [64, 1024]
    assert {run["method"] for run in axis["runs"]} == {"dense", "kernel"}
    for run in axis["runs"]:
        # independent: λ_min of the empirical NTK recomputed from the network's activation pattern
        X, _ = snt.data.sphere(12, 4, seed=0)
        net = snt.ShallowReLU(4, run["width"], run["bias"], seed=0)
        A = (X @ net.W.T - net.b >= 0).astype(float)
        H = (X @ X.T + 1) * (A @ A.T) / run["width"]
        assert run["lambda_empirical"] == pytest.approx(np.linalg.eigvalsh(H)[0], rel=1e-9, abs=1e-12)
        assert run["two_eta_lambda"] == pytest.approx(2 * run["lr"] * run["lambda_empirical"])
    assert isinstance(axis["gap_closes"], bool) and "width 1024" in axis["verdict"]


def test_resuming_from_a_checkpoint_continues_the_dense_trajectory():
    from sparsentk.training import _run

    X, y = crossing_problem()
    net = snt.ShallowReLU(5, 600, bias=1.5, seed=8)
    dense = net.copy()
    hd = snt.train(dense, X, y, lr=2.0, steps=20, method="dense")
    first = net.copy()
    done = snt.train(first, X, y, lr=2.0, steps=8, method="kernel")
    resumed = net.copy()  # initial parameters; the run continues from the checkpoint's W, b
    h = _run(resumed, X, y, lr=2.0, steps=20, method="kernel", resume=(done, first.W.copy(), first.b.copy()))
    np.testing.assert_allclose(h.loss, hd.loss, rtol=1e-9)
    for name in ("active_mean", "flips"):
        np.testing.assert_array_equal(getattr(h, name), getattr(hd, name))
    np.testing.assert_allclose(h.movement_w, hd.movement_w, rtol=1e-8)
    np.testing.assert_allclose(resumed.W, dense.W, rtol=1e-8, atol=1e-10)


def drifting_problem():
    """Targets far above f(0): active neurons lower their biases and fire for many more inputs than at t = 0, so
    certificates of examinations run out and lists outgrow their slots."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((200, 6))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, 5.0 + rng.uniform(-1, 1, 200)


def test_reexaminations_and_compaction_keep_the_dense_trajectory(monkeypatch):
    from sparsentk import _sparse

    monkeypatch.setattr(_sparse, "COMPACT_MIN", 0)  # compact whenever moved lists leave a tenth of the pool behind
    monkeypatch.setattr(_sparse, "COMPACT_FRACTION", 0.1)
    compactions = []
    original = _function_space.skern.compact
    monkeypatch.setattr(_function_space.skern, "compact", lambda *args: compactions.append(1) or original(*args))
    X, y = drifting_problem()
    dense, kernel, hd, hk = run_both(X, y, 300, 2.0, 0.1, steps=30)
    assert hd.active_mean[-1] > 4 * hd.active_mean[0]
    assert np.nansum(hk.stats["reexamined"][1:]) > 0 and compactions
    assert_same(dense, kernel, hd, hk)


def test_long_run_through_many_references_and_resyncs_stays_exact(monkeypatch):
    """Past the ring of reference residuals (certificates that expire, deviation clocks of old references, the
    movement's speed records) and several resynchronizations: still the dense trajectory."""
    monkeypatch.setattr(_function_space, "RING", 3)
    monkeypatch.setattr(_function_space, "REFRESH_EVERY", 2)
    monkeypatch.setattr(_function_space, "RESYNC_EVERY", 25)
    monkeypatch.setattr(_function_space, "FALLBACK_FRACTION", 1.1)  # this engine throughout
    X, y = crossing_problem()
    for bias, lr in ((1.5, 1.0), (0.5, 0.2)):
        dense, kernel, hd, hk = run_both(X, y, 1000, bias, lr, steps=120, seed=3)
        assert hk.steps == 120 and np.nansum(hk.stats["crossings"]) > 0
        assert np.nansum(hk.stats["renewed"]) > 0 and np.isfinite(hk.stats["drift"]).sum() == 4
        assert_same(dense, kernel, hd, hk)
