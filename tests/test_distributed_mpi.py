"""Neuron-sharded training over MPI (sparsentk.distributed.mpi): 2 ranks against single-process `train`, bitwise
repeatability, a killed rank, resume at the same and at another rank count, a failing and a hung rank, Ctrl-C on
one rank, checkpoints of another run refused, and an initialization that does not depend on the rank count.

Every MPI job is a subprocess (`mpiexec -n 2 python ...`) with a timeout; the single-process oracle is
`sparsentk.train` in this process. The problem is small (n = 64, d = 6, width 3000 across three init blocks).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py")

import sparsentk as snt
from sparsentk.distributed import NetworkSpec, neuron_range

MPIEXEC = Path(sys.executable).parent / "mpiexec"
if not MPIEXEC.exists():
    MPIEXEC = Path(shutil.which("mpiexec") or "mpiexec")

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.xdist_group("mpi"),
    pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec (extra mpi)"),
]

N, DIM, WIDTH, BIAS, SEED, LR, STEPS = 64, 6, 3000, 1.0, 0, 0.5, 40

# Run by every rank: trains the problem above with sparsentk.distributed.train_sharded; rank 0 saves the result.
DRIVER = r'''
import json, os, signal, sys, time
import numpy as np
import sparsentk as snt
from sparsentk.distributed import NetworkSpec, empirical_ntk_sharded, train_sharded
from mpi4py import MPI

args = json.loads(sys.argv[1])
rank = MPI.COMM_WORLD.rank
from sparsentk import _function_space
for name, value in args.get("patch", {}).items():  # engine constants of method="kernel" (e.g. its hand-over)
    setattr(_function_space, name, value)
X, y = snt.data.sphere(args["n"], args["dim"], teacher="relu", noise=0.0, seed=args["seed"])
if args["full_net"]:
    net = snt.ShallowReLU(args["dim"], args["width"], args["bias"], seed=args["seed"])
else:
    net = NetworkSpec(args["dim"], args["width"], args["bias"], seed=args["seed"])

H = empirical_ntk_sharded(net, X)  # collective: every rank's neurons

def callback(t, local, history):
    if rank == 1 and t == args.get("kill_at"):
        with open(args["out"] + ".killed", "w") as fh:
            fh.write(repr(time.time()))
        os.kill(os.getpid(), signal.SIGKILL)
    if rank == 1 and t == args.get("hang_at"):
        time.sleep(120)
    if rank == 1 and t == args.get("raise_at"):
        raise RuntimeError("boom")
    if rank == 1 and t == args.get("interrupt_at"):
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C on this rank only

failures = ("kill_at", "hang_at", "raise_at", "interrupt_at")
try:
    result = train_sharded(net, X, y, lr=args["lr"], steps=args["steps"], method=args["method"],
                           callback=callback if any(k in args for k in failures) else None,
                           checkpoint=args.get("checkpoint"), checkpoint_every=args.get("every", 0),
                           resume=args.get("resume", False), timeout=args.get("timeout"))
except snt.TrainingInterrupted as err:  # every rank, after the same step
    print(f"rank {rank} interrupted after step {err.history.steps}", flush=True)
    result = err.result
full = net if args["full_net"] else result.gather(root=0)  # a ShallowReLU is updated in place on every rank
if rank == 0:
    h = result.history
    np.savez(args["out"], loss=h.loss, flips=h.flips, active_mean=h.active_mean, movement_w=h.movement_w,
             movement_b=h.movement_b, W=full.W, b=full.b, H=H, **{f"stats_{k}": v for k, v in h.stats.items()})
'''


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mpi") / "driver.py"
    path.write_text(DRIVER)
    return path


def launch(ranks: int, script: list[str], timeout: float = 90) -> tuple[subprocess.CompletedProcess, float]:
    command = [str(MPIEXEC), "-n", str(ranks), sys.executable, *script] if ranks else [sys.executable, *script]
    start = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - start


def run_driver(driver: Path, out: Path, ranks: int = 2, **kwargs) -> tuple[subprocess.CompletedProcess, float]:
    args = {"n": N, "dim": DIM, "width": WIDTH, "bias": BIAS, "seed": SEED, "lr": LR, "steps": STEPS,
            "method": "dense", "full_net": False, "out": str(out), **kwargs}
    return launch(ranks, [str(driver), json.dumps(args)])


def cli(out: Path, ranks: int, *extra: str) -> subprocess.CompletedProcess:
    proc, _ = launch(ranks, ["-m", "sparsentk", "train", "--n", str(N), "--dim", str(DIM), "--width", str(WIDTH),
                             "--bias", str(BIAS), "--seed", str(SEED), "--lr", str(LR), "--steps", str(STEPS),
                             "--method", "dense", "--distributed", "--out", str(out), "--no-progress", *extra])
    return proc


@pytest.fixture(scope="module")
def single():
    """The oracle: single-process sparsentk.train on the same problem, per method."""
    X, y = snt.data.sphere(N, DIM, teacher="relu", noise=0.0, seed=SEED)
    out = {}
    for method in ("dense", "sparse"):
        net = snt.ShallowReLU(DIM, WIDTH, BIAS, seed=SEED)
        history = snt.train(net, X, y, lr=LR, steps=STEPS, method=method)
        out[method] = (history, net)
    return out


@pytest.fixture(scope="module")
def two_ranks(driver, tmp_path_factory):
    """2-rank runs, launched once each: dense from a ShallowReLU held by every rank, sparse from a NetworkSpec."""
    folder = tmp_path_factory.mktemp("two_ranks")
    runs = {}
    for method, full_net in (("dense", True), ("sparse", False)):
        proc, _ = run_driver(driver, folder / f"{method}.npz", method=method, full_net=full_net)
        assert proc.returncode == 0, proc.stderr
        runs[method] = dict(np.load(folder / f"{method}.npz"))
    return runs


@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_two_ranks_equal_single_process(two_ranks, single, method):
    history, net = single[method]
    run = two_ranks[method]
    assert history.flips[-1] > 0  # activations changed: the test exercises the whole dynamics
    np.testing.assert_allclose(run["loss"], history.loss, rtol=1e-12, atol=0)
    np.testing.assert_allclose(run["W"], net.W, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(run["b"], net.b, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(run["flips"], history.flips)
    np.testing.assert_allclose(run["active_mean"], history.active_mean, rtol=1e-14)
    np.testing.assert_allclose(run["movement_w"], history.movement_w, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(run["movement_b"], history.movement_b, rtol=1e-12, atol=1e-15)
    # the empirical NTK at initialization, summed over the ranks' neurons, against the whole network's
    X, _ = snt.data.sphere(N, DIM, teacher="relu", noise=0.0, seed=SEED)
    H = snt.empirical_ntk(snt.ShallowReLU(DIM, WIDTH, BIAS, seed=SEED), X)
    np.testing.assert_allclose(run["H"], H, rtol=1e-12, atol=1e-15)


def test_two_rank_runs_bitwise_equal(two_ranks, driver, tmp_path):
    proc, _ = run_driver(driver, tmp_path / "again.npz", method="sparse")
    assert proc.returncode == 0, proc.stderr
    again = np.load(tmp_path / "again.npz")
    for key in ("loss", "flips", "movement_w", "W", "b"):
        assert again[key].tobytes() == two_ranks["sparse"][key].tobytes(), key


def test_killed_rank_ends_job_and_resume_finishes_it(two_ranks, single, driver, tmp_path):
    out = tmp_path / "run"
    proc, _ = run_driver(driver, tmp_path / "never.npz", checkpoint=str(out / "checkpoints"), every=10, kill_at=30)
    seconds = time.time() - float((tmp_path / "never.npz.killed").read_text())
    assert proc.returncode != 0
    assert seconds < 10, f"the job took {seconds:.1f} s to end after a rank died"
    assert not (tmp_path / "never.npz").exists()
    markers = sorted(p.name for p in (out / "checkpoints").glob("step-*.json"))
    assert markers[-1] == "step-000000020.json"  # step 30's rows were written, but never committed
    shutil.copytree(out, tmp_path / "other")

    # the same rank count, through the CLI: equal to the uninterrupted 2-rank run, bitwise
    proc = cli(out, 2, "--resume", "--checkpoint-every", "10")
    assert proc.returncode == 0, proc.stderr
    history = np.genfromtxt(out / "history.csv", delimiter=",", names=True)
    assert history["step"].tolist() == list(range(STEPS + 1))
    assert history["loss"].tobytes() == two_ranks["dense"]["loss"].tobytes()
    assert history["flips"].astype(np.int64).tolist() == two_ranks["dense"]["flips"].tolist()
    with np.load(out / "params.npz") as params:
        assert params["W"].tobytes() == two_ranks["dense"]["W"].tobytes()
        assert params["b"].tobytes() == two_ranks["dense"]["b"].tobytes()

    # the 2-rank checkpoint resumed by one process (no mpiexec): equal to single-process train
    proc, _ = run_driver(driver, tmp_path / "one.npz", ranks=0, checkpoint=str(tmp_path / "other" / "checkpoints"),
                         resume=True)
    assert proc.returncode == 0, proc.stderr
    reference, net = single["dense"]
    one = np.load(tmp_path / "one.npz")
    np.testing.assert_allclose(one["loss"], reference.loss, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(one["flips"], reference.flips)
    np.testing.assert_allclose(one["W"], net.W, rtol=1e-12, atol=1e-14)


def test_failed_rank_ends_the_job(driver, tmp_path):
    proc, _ = run_driver(driver, tmp_path / "never.npz", steps=10, raise_at=3)
    assert proc.returncode != 0
    assert "sparsentk: rank 1 of 2: RuntimeError: boom; ending the job" in proc.stderr
    assert not (tmp_path / "never.npz").exists()


def test_ctrl_c_on_one_rank_stops_every_rank_after_the_same_step(driver, tmp_path):
    proc, _ = run_driver(driver, tmp_path / "stopped.npz", steps=STEPS, interrupt_at=5)
    assert proc.returncode == 0, proc.stderr
    # mpiexec merges the ranks' output, so two lines can arrive glued together: match, don't split
    stops = sorted(re.findall(r"rank (\d+) interrupted after step (\d+)", proc.stdout))
    assert stops == [("0", "6"), ("1", "6")], proc.stdout
    assert len(np.load(tmp_path / "stopped.npz")["loss"]) == 7


def test_hung_rank_is_ended_by_the_timeout(driver, tmp_path):
    proc, seconds = run_driver(driver, tmp_path / "never.npz", steps=10, hang_at=3, timeout=1.5)
    assert proc.returncode != 0
    assert seconds < 30
    assert "no step finished within the timeout (1.5 s)" in proc.stderr


def test_cli_options_need_distributed(tmp_path, capsys):
    from sparsentk.cli import main

    with pytest.raises(SystemExit) as info:
        main(["train", "--n", "8", "--dim", "3", "--width", "8", "--steps", "1", "--resume", "--out", str(tmp_path),
              "--no-progress"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "need --distributed" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("init", ["standard", "symmetric"])
def test_initialization_does_not_depend_on_the_split(init):
    width = 2 * 1030 + 6  # crosses init blocks, and the mirror point of symmetric init inside a block
    net = snt.ShallowReLU(4, width, 0.5, init=init, seed=7)
    spec = NetworkSpec(4, width, 0.5, init=init, seed=7)
    for size in (1, 2, 3, 7):
        parts = [spec.rows(*neuron_range(width, size, rank)) for rank in range(size)]
        assert sum(p.width for p in parts) == width
        np.testing.assert_array_equal(np.concatenate([p.W for p in parts]), net.W)
        np.testing.assert_array_equal(np.concatenate([p.a for p in parts]), net.a)
        np.testing.assert_array_equal(np.concatenate([p.b for p in parts]), net.b)
    if init == "symmetric":  # mirrored neurons: f ≡ 0 at initialization
        half = width // 2
        np.testing.assert_array_equal(net.W[:half], net.W[half:])
        np.testing.assert_array_equal(net.a[:half], -net.a[half:])
    # the streams are per block: a narrower network is a prefix of a wider one (standard init)
    if init == "standard":
        np.testing.assert_array_equal(snt.ShallowReLU(4, 1500, 0.5, seed=7).W, net.W[:1500])


def test_draws_are_standard_normal_and_fair_signs():
    """The blocked draw is still w ~ N(0, I), a ~ ±1 (moments of 2·10^5 entries, independent oracle: the law)."""
    net = snt.ShallowReLU(20, 10_000, seed=3)
    W = net.W.ravel()
    assert abs(W.mean()) < 5 / np.sqrt(W.size)
    assert abs(W.var() - 1) < 5 * np.sqrt(2 / W.size)
    assert abs(net.a.mean()) < 5 / np.sqrt(net.width)
    assert set(np.unique(net.a)) == {-1.0, 1.0}
    # different blocks are different streams (no repeated block)
    assert not np.array_equal(net.W[:1024], net.W[1024:2048])



# One rank (COMM_SELF) in a fresh process, so that this pytest process never initializes MPI.
ONE_RANK = r'''
import sys
from pathlib import Path
import numpy as np
import pytest
import sparsentk as snt
from mpi4py import MPI
from sparsentk.distributed import NetworkSpec, train_sharded

folder = Path(sys.argv[2])


def refused():
    """A checkpoint folder is not silently mixed with another run's; the same run extends bitwise."""
    X, y = snt.data.sphere(16, 3, seed=1)
    spec = NetworkSpec(3, 40, 0.5, seed=2)
    common = {"method": "dense", "comm": MPI.COMM_SELF, "threads": 1, "checkpoint": folder}
    first = train_sharded(spec, X, y, lr=0.2, steps=6, checkpoint_every=3, **common)
    assert sorted(p.name for p in folder.glob("step-*.json")) == ["step-000000003.json", "step-000000006.json"]
    with pytest.raises(ValueError, match=r"checkpoint: .* holds checkpoints of an earlier run"):
        train_sharded(spec, X, y, lr=0.2, steps=6, **common)
    with pytest.raises(ValueError, match=r"resume: .* different run .*data"):
        train_sharded(spec, X, -y, lr=0.2, steps=9, resume=True, **common)
    with pytest.raises(ValueError, match=r"resume: .* different run .*lr"):
        train_sharded(spec, X, y, lr=0.3, steps=9, resume=True, **common)
    more = train_sharded(spec, X, y, lr=0.2, steps=9, resume=True, **common)
    common.pop("checkpoint")
    scratch = train_sharded(spec, X, y, lr=0.2, steps=9, **common)
    assert more.history.loss[:7].tobytes() == first.history.loss.tobytes()
    assert more.history.loss.tobytes() == scratch.history.loss.tobytes()
    assert more.W.tobytes() == scratch.W.tobytes()


def sparse_resume():
    """The sparse engine's restart (every neuron re-examined at the checkpoint's rows, flips against the initial
    pattern, movement from the initial rows) continues as if never stopped, up to rounding."""
    X, y = snt.data.sphere(40, 5, seed=4)
    spec = NetworkSpec(5, 600, 1.0, seed=5)
    common = {"lr": 0.3, "method": "sparse", "comm": MPI.COMM_SELF, "threads": 1}
    train_sharded(spec, X, y, steps=8, checkpoint=folder, checkpoint_every=4, **common)
    resumed = train_sharded(spec, X, y, steps=16, checkpoint=folder, resume=True, **common)
    scratch = train_sharded(spec, X, y, steps=16, **common)
    assert scratch.history.flips[-1] > scratch.history.flips[8] > 0
    np.testing.assert_allclose(resumed.history.loss, scratch.history.loss, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(resumed.history.flips, scratch.history.flips)
    np.testing.assert_allclose(resumed.history.movement_w, scratch.history.movement_w, rtol=1e-12)
    np.testing.assert_allclose(resumed.history.movement_b, scratch.history.movement_b, rtol=1e-12)
    np.testing.assert_allclose(resumed.W, scratch.W, rtol=1e-12, atol=1e-14)


def auto_kernel():
    """method="auto" chooses for the whole network as train does: "kernel" where few neurons move per step."""
    X, y = snt.data.sphere(40, 8, seed=0)
    sharded = train_sharded(NetworkSpec(8, 4000, 2.0, seed=1), X, y, lr=0.02, steps=3, method="auto",
                            comm=MPI.COMM_SELF, threads=1)
    single = snt.train(snt.ShallowReLU(8, 4000, 2.0, seed=1), X, y, lr=0.02, steps=3, method="auto")
    assert sharded.history.method == single.method == "kernel"
    np.testing.assert_allclose(sharded.history.loss, single.loss, rtol=1e-12, atol=0)


globals()[sys.argv[1]]()
'''


@pytest.mark.parametrize("case", ["refused", "sparse_resume", "auto_kernel"])
def test_one_rank_checkpoints(case, tmp_path):
    script = tmp_path / "one_rank.py"
    script.write_text(ONE_RANK)
    proc, _ = launch(0, [str(script), case, str(tmp_path / "ckpt")])
    assert proc.returncode == 0, proc.stderr[-4000:]


# --- method="kernel" (exact GD in function space): each rank holds the partial H_A and C of its neurons --------
#: "kernel": this engine throughout (crossings at every step); "fallback": every step with a neuron brought up to
#: date counts as busy, so it hands over to the sparse engine after four (on every rank at the same step).
KERNEL_CASES = {"kernel": {"FALLBACK_FRACTION": 1.1}, "fallback": {"FALLBACK_FRACTION": 0.0, "FALLBACK_PATIENCE": 4}}


def _single_kernel(patch, steps=STEPS):
    X, y = snt.data.sphere(N, DIM, teacher="relu", noise=0.0, seed=SEED)
    net = snt.ShallowReLU(DIM, WIDTH, BIAS, seed=SEED)
    with pytest.MonkeyPatch.context() as mp:
        from sparsentk import _function_space

        for name, value in patch.items():
            mp.setattr(_function_space, name, value)
        history = snt.train(net, X, y, lr=LR, steps=steps, method="kernel")
    return history, net


@pytest.mark.parametrize("case", sorted(KERNEL_CASES))
def test_two_ranks_kernel_equal_single_process_kernel_and_dense(case, single, driver, tmp_path):
    patch = KERNEL_CASES[case]
    history, net = _single_kernel(patch)
    proc, _ = run_driver(driver, tmp_path / "kernel.npz", method="kernel", patch=patch)
    assert proc.returncode == 0, proc.stderr
    run = np.load(tmp_path / "kernel.npz")
    fallback = run["stats_fallback"]
    if case == "kernel":
        assert fallback.max() == 0 and np.nansum(run["stats_crossings"]) > 100  # pairs cross, no hand-over
    else:
        assert fallback[1] == 0 and fallback[-1] == 1  # handed over mid-run
    np.testing.assert_array_equal(fallback, history.stats["fallback"])
    np.testing.assert_allclose(run["loss"], history.loss, rtol=1e-12, atol=0)
    np.testing.assert_allclose(run["W"], net.W, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(run["b"], net.b, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(run["flips"], history.flips)
    np.testing.assert_array_equal(run["active_mean"], history.active_mean)
    np.testing.assert_allclose(run["movement_w"], history.movement_w, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(run["movement_b"], history.movement_b, rtol=1e-12, atol=1e-15)
    # and dense GD (the kernel method's own exactness standard, tests/test_function_space.py)
    dense_history, dense = single["dense"]
    assert dense_history.flips[-1] > 0
    np.testing.assert_allclose(run["loss"], dense_history.loss, rtol=1e-9, atol=0)
    np.testing.assert_array_equal(run["flips"], dense_history.flips)
    np.testing.assert_allclose(run["W"], dense.W, rtol=1e-8, atol=1e-10)


def test_kernel_checkpoint_of_one_process_resumes_on_two_ranks(driver, tmp_path):
    patch = KERNEL_CASES["kernel"]
    folder = str(tmp_path / "checkpoints")
    proc, _ = run_driver(driver, tmp_path / "first.npz", ranks=0, method="kernel", patch=patch, steps=20,
                         checkpoint=folder, every=10)
    assert proc.returncode == 0, proc.stderr
    proc, _ = run_driver(driver, tmp_path / "resumed.npz", method="kernel", patch=patch, checkpoint=folder,
                         resume=True)
    assert proc.returncode == 0, proc.stderr
    history, net = _single_kernel(patch)
    run = np.load(tmp_path / "resumed.npz")
    assert run["flips"][-1] > run["flips"][20] > 0
    np.testing.assert_allclose(run["loss"], history.loss, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(run["flips"], history.flips)
    np.testing.assert_allclose(run["movement_w"], history.movement_w, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(run["W"], net.W, rtol=1e-12, atol=1e-14)
