import csv
import inspect

import numpy as np
import pytest

import sparsentk as snt
from sparsentk.training import ITERATE_FIELDS


def textbook_gd(W, b, a, X, y, lr, steps):
    """Plain full-batch GD written out from the formulas (paper-notes §1); returns losses and final params."""
    W, b = W.astype(np.float64).copy(), b.astype(np.float64).copy()
    m = len(a)
    losses = []
    for t in range(steps + 1):
        Z = X @ W.T - b
        A = (Z >= 0).astype(float)
        r = (np.maximum(Z, 0) @ a) / np.sqrt(m) - y
        losses.append(0.5 * r @ r)
        if t == steps:
            break
        gW = ((A * r[:, None]).T @ X) * (a / np.sqrt(m))[:, None]
        gb = -(A * r[:, None]).sum(axis=0) * a / np.sqrt(m)
        W -= lr * gW
        b -= lr * gb
    return np.array(losses), W, b


@pytest.mark.parametrize("init", ["standard", "symmetric"])
@pytest.mark.parametrize("bias", [0.0, 1.0])
def test_dense_gd_matches_textbook_loop(problem, init, bias):
    X, y = problem
    net = snt.ShallowReLU(5, 300, bias=bias, init=init, seed=7)
    W0, b0 = net.W.copy(), net.b.copy()
    history = snt.train(net, X, y, lr=0.3, steps=25, method="dense")
    losses, W, b = textbook_gd(W0, b0, net.a, X, y, 0.3, 25)
    np.testing.assert_allclose(history.loss, losses, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(net.W, W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(net.b, b, rtol=1e-10, atol=1e-12)
    assert history.loss[-1] < history.loss[0]


def test_dense_gd_across_neuron_blocks(problem):
    X, y = problem
    net = snt.ShallowReLU(5, 5000, bias=2.0, seed=1)
    W0, b0 = net.W.copy(), net.b.copy()
    history = snt.train(net, X, y, lr=1.0, steps=5, method="dense")
    losses, W, _ = textbook_gd(W0, b0, net.a, X, y, 1.0, 5)
    np.testing.assert_allclose(history.loss, losses, rtol=1e-10)
    np.testing.assert_allclose(net.W, W, rtol=1e-10, atol=1e-12)


def test_float32_follows_float64(problem):
    X, y = problem
    n32 = snt.ShallowReLU(5, 200, bias=0.5, seed=3, dtype=np.float32)
    n64 = snt.ShallowReLU(5, 200, bias=0.5, seed=3)
    h32 = snt.train(n32, X, y, lr=0.2, steps=10, method="dense")
    h64 = snt.train(n64, X, y, lr=0.2, steps=10, method="dense")
    assert n32.W.dtype == np.float32
    np.testing.assert_allclose(h32.loss, h64.loss, rtol=1e-3)


def test_history_fields_match_direct_recomputation(problem):
    X, y = problem
    net = snt.ShallowReLU(5, 400, bias=1.0, seed=11)
    snapshots = []
    history = snt.train(
        net, X, y, lr=2.0, steps=15, method="dense",
        callback=lambda t, n, h: snapshots.append((t, n.W.copy(), n.b.copy())),
    )
    assert [s[0] for s in snapshots] == list(range(16))
    W0, b0 = snapshots[0][1], snapshots[0][2]
    A0 = X @ W0.T >= b0
    for t, W, b in snapshots:
        Z = X @ W.T - b
        A = Z >= 0
        r = (np.maximum(Z, 0) @ net.a) / np.sqrt(net.width) - y
        assert history.loss[t] == pytest.approx(0.5 * r @ r, rel=1e-12)
        assert history.active_mean[t] == pytest.approx(A.sum(axis=1).mean())
        assert history.active_max[t] == A.sum(axis=1).max()
        assert history.flips[t] == np.count_nonzero(A != A0)
        assert history.movement_w[t] == pytest.approx(np.linalg.norm(W - W0, axis=1).max(), rel=1e-12, abs=1e-15)
        assert history.movement_b[t] == pytest.approx(np.abs(b - b0).max(), rel=1e-12, abs=1e-15)
    assert history.flips[-1] > 0
    assert history.seconds.shape == (15,) and np.all(history.seconds > 0)
    assert history.steps == 15 and history.method == "dense" and history.lr == 2.0


def test_zero_steps(problem):
    X, y = problem
    net = snt.ShallowReLU(5, 10, seed=0)
    W = net.W.copy()
    history = snt.train(net, X, y, lr=0.1, steps=0, method="dense")
    assert history.loss.shape == (1,) and history.seconds.shape == (0,)
    np.testing.assert_array_equal(net.W, W)


def test_same_seed_same_numbers(problem):
    X, y = problem
    runs = [snt.train(snt.ShallowReLU(5, 64, bias=0.5, seed=5), X, y, lr=0.5, steps=10, method="dense")
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].loss, runs[1].loss)
    np.testing.assert_array_equal(runs[0].flips, runs[1].flips)


def diverging_run(X, y, lr, method, options):
    """Train until TrainingDiverged; returns (step t that diverged, error, network, snapshots of every iterate)."""
    net = snt.ShallowReLU(5, 50, bias=0.0, seed=2, dtype=np.float32)
    snapshots = []

    def record(t, n, h):
        snapshots.append((n.W.copy(), n.b.copy(), {name: getattr(h, name)[t].copy() for name in ITERATE_FIELDS}))

    try:
        snt.train(net, X, y, lr=lr, steps=40, method=method, callback=record, **options)
    except snt.TrainingDiverged as err:
        return len(err.history.loss), err, net, snapshots
    return None, None, net, snapshots


@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_divergence_keeps_the_iterate_before_the_bad_step(problem, method):
    """Over a range of huge steps the run diverges at steps 1, 2, 3, ...: after each, the network holds exactly the
    parameters of iterate t − 1 and the history exactly iterates 0 .. t − 1. A step that diverges at t >= 2
    checks that the kept parameters are not the initial ones, and both parities of t exercise both buffers of the
    sparse engine (each step writes to the other one)."""
    X, y = problem
    # every way of diverging: by default (a loss explosion or lost activity may be caught before the overflow) and,
    # where train can be told to wait for a non-finite loss, that way too
    variants = [{}] + ([{"diverge_factor": None}] if "diverge_factor" in inspect.signature(snt.train).parameters
                       else [])
    seen = set()
    for options in variants:
        mine = set()
        for k in [*np.arange(0.0, 4.0, 0.5), *range(4, 40, 2)]:
            # a ReLU net with fixed output signs rarely overflows: float32 and huge steps do
            t, err, net, snapshots = diverging_run(X, 1e3 * y, 10.0**k, method, options)
            if t is None:
                continue
            seen.add(t)
            mine.add(t)
            assert len(snapshots) == t and err.history.steps == t - 1 and len(err.history.seconds) == t - 1
            W, b, _ = snapshots[t - 1]
            np.testing.assert_array_equal(net.W, W)
            np.testing.assert_array_equal(net.b, b)
            assert np.all(np.isfinite(net.W)) and net.W.dtype == np.float32
            for name in ITERATE_FIELDS:
                np.testing.assert_array_equal(getattr(err.history, name), [s[2][name] for s in snapshots],
                                              err_msg=name)
            if t >= 2:
                assert not np.array_equal(net.W, snapshots[0][0])
            if {t % 2 for t in seen if t >= 2} == {0, 1} and max(mine) >= 2:
                break  # both parities seen, and this way of diverging kept a trained iterate
        assert max(mine, default=0) >= 2, options
    assert {t % 2 for t in seen if t >= 2} == {0, 1}, seen


def test_to_csv_and_dict(problem, tmp_path):
    X, y = problem
    history = snt.train(snt.ShallowReLU(5, 30, seed=0), X, y, lr=0.5, steps=4, method="dense")
    history.to_csv(tmp_path / "h.csv")
    rows = list(csv.DictReader(open(tmp_path / "h.csv")))
    assert len(rows) == 5 and rows[0]["seconds"] == ""
    for name in ITERATE_FIELDS:
        np.testing.assert_allclose([float(r[name]) for r in rows], getattr(history, name))
    d = history.to_dict()
    assert d["loss"] == history.loss.tolist() and len(d["seconds"]) == 4 and d["method"] == "dense"
    assert not list(tmp_path.glob(".*.tmp"))


def test_auto_picks_dense_for_small_bias(problem):
    X, y = problem
    history = snt.train(snt.ShallowReLU(5, 30, bias=0.0, seed=0), X, y, lr=0.5, steps=1, method="auto")
    assert history.method == "dense"


def test_expected_active_fraction_handles_norms():
    X = np.array([[2.0, 0.0], [0.0, 0.5]])
    from scipy.stats import norm

    expected = 0.5 * (norm.sf(1.0 / 2.0) + norm.sf(1.0 / 0.5))
    assert snt.training.expected_active_fraction(1.0, X) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"lr": 0.0}, ValueError, "lr: expected a positive number, got 0.0"),
        ({"lr": -1.0}, ValueError, "lr: expected a positive number"),
        ({"lr": float("nan")}, ValueError, "lr: expected a finite number"),
        ({"steps": -1}, ValueError, "steps: expected an integer >= 0, got -1"),
        ({"method": "fast"}, ValueError, "method: expected one of"),
        ({"callback": 3}, TypeError, "callback: expected a callable"),
    ],
)
def test_bad_training_arguments(problem, kwargs, exc, match):
    X, y = problem
    args = {"lr": 0.1, "steps": 2} | kwargs
    with pytest.raises(exc, match=match):
        snt.train(snt.ShallowReLU(5, 4, seed=0), X, y, **args)


def test_bad_training_data(problem):
    X, y = problem
    net = snt.ShallowReLU(5, 4, seed=0)
    Xn = X.copy()
    Xn[3, 1] = np.inf
    with pytest.raises(ValueError, match=r"X: expected finite values, got inf at index \(3, 1\)"):
        snt.train(net, Xn, y, lr=0.1, steps=1)
    yn = y.copy()
    yn[2] = np.nan
    with pytest.raises(ValueError, match="y: expected finite values"):
        snt.train(net, X, yn, lr=0.1, steps=1)
    with pytest.raises(ValueError, match="y: expected length 24"):
        snt.train(net, X, y[:-1], lr=0.1, steps=1)
    with pytest.raises(ValueError, match="X: expected 5 columns"):
        snt.train(net, X[:, :4], y, lr=0.1, steps=1)
    with pytest.raises(TypeError, match=r"net: expected a sparsentk\.ShallowReLU"):
        snt.train("net", X, y, lr=0.1, steps=1)
