"""Neuron-sharded training over MPI (issue 15 items 1 and 4): K ranks × 1 thread against 1 process × K threads,
memory per rank, all-reduce latency and bandwidth, and the step-time model of README's "Scaling out".

``python benchmarks/run.py distributed [-- --quick] [-- --ranks K]``, or ``python benchmarks/bench_distributed.py``.

Targets: a sharded step on this machine (2 ranks × 1 thread) within 15 % of the single process with 2 threads;
memory per rank about half. Each configuration runs in a fresh process (``mpiexec -n K`` for the sharded one), so
threads and peak memory are its own. The model's constants are measured here; its derived widths are printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import header, table, unit_data  # noqa: E402

#: Per configuration: (n, d, width, bias, steps, lr); float32, unit-norm inputs, labels uniform in [−1, 1]. The
#: step sizes keep η·λ_max(H) ≈ 0.1 (dense, B = 1: λ_max ≈ 0.025 n) and follow bench_training (sparse).
FULL = {"dense": (2048, 128, 2**17, 1.0, 10, 4 / 2048), "sparse": (2048, 128, 2**18, 2.5, 30, 0.5),
        "kernel": (2048, 128, 2**18, 3.0, 30, 2.0)}
QUICK = {"dense": (256, 16, 2**12, 1.0, 4, 4 / 256), "sparse": (256, 16, 2**13, 2.5, 6, 0.5),
         "kernel": (256, 16, 2**13, 3.0, 6, 2.0)}
#: all-reduce message sizes (float64 entries)
SIZES = (1, 16, 256, 4096, 65536, 1 << 20)
QUICK_SIZES = (1, 256, 4096)
#: Floats of a step's buffer besides the 2n of the outputs and counts: 8 sums + the checkpoint slot, plus 4 maxima
#: per rank (sparse method; dense uses 1 sum and 2 maxima).
EXTRA_SUMS, MAXIMA = 9, 4


def _mpiexec() -> str:
    local = Path(sys.executable).parent / "mpiexec"
    return str(local) if local.exists() else "mpiexec"


def _rss_now() -> float:
    """Resident memory of this process now, bytes."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


# ------------------------------------------------------------------------------------------------ workers
def worker(config: dict) -> None:
    """One measurement, in a fresh process: ``single`` (snt.train with ``threads`` threads) or ``sharded`` (under
    mpiexec, train_sharded with ``threads`` per rank) or ``allreduce``. Prints one JSON line (rank 0)."""
    import sparsentk as snt

    kind = config["kind"]
    if kind == "allreduce":
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        out = {}
        for size in config["sizes"]:
            buf = np.ones(size)
            repeats = max(20, min(2000, int(2e7 / (size * 8 + 1e4))))
            for _ in range(5):
                comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            comm.Barrier()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
                times.append(time.perf_counter() - start)
            out[size] = float(np.median(comm.allreduce(np.median(times), op=MPI.MAX)))
        if comm.rank == 0:
            print(json.dumps(out), flush=True)
        return

    n, d, width, bias, steps, lr = config["problem"]
    method, threads = config["method"], config["threads"]
    X, y = unit_data(n, d, dtype=np.float32)
    warm = snt.ShallowReLU(d, 64, bias, seed=1, dtype=np.float32)
    if kind == "single":
        import numba
        from threadpoolctl import threadpool_limits

        numba.set_num_threads(threads)
        with threadpool_limits(threads, user_api="blas"):
            snt.train(warm, X, y, lr=lr, steps=2, method=method)  # compile before measuring
            base = _rss_now()
            net = snt.ShallowReLU(d, width, bias, seed=0, dtype=np.float32)
            history = snt.train(net, X, y, lr=lr, steps=steps, method=method)
        print(json.dumps({"seconds": float(np.median(history.seconds)), "memory": _peak_rss() - base,
                          "loss": float(history.loss[-1]), "handed_over": _handed_over(history)}), flush=True)
        return

    from mpi4py import MPI

    from sparsentk.distributed import NetworkSpec, train_sharded

    comm = MPI.COMM_WORLD
    train_sharded(warm, X, y, lr=lr, steps=2, method=method, threads=threads)
    base = _rss_now()
    result = train_sharded(NetworkSpec(d, width, bias, seed=0, dtype=np.float32), X, y, lr=lr, steps=steps,
                           method=method, threads=threads)
    memory = comm.gather(_peak_rss() - base, root=0)
    if comm.rank == 0:
        print(json.dumps({"seconds": float(np.median(result.history.seconds)), "memory": max(memory),
                          "loss": float(result.history.loss[-1]), "handed_over": _handed_over(result.history)}),
              flush=True)


def _handed_over(history) -> bool:
    """Whether the kernel method handed over to the sparse engine during the run (its steps are then sparse's)."""
    return bool(np.nanmax(history.stats.get("fallback", [0])) > 0)


def _run_worker(config: dict, ranks: int | None) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(config)]
    if ranks is not None:
        command = [_mpiexec(), "-n", str(ranks), *command]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {config['kind']} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------- parts
def sharded_vs_threads(problems: dict, ranks: int) -> dict:
    header(f"Sharded GD: {ranks} ranks × 1 thread against 1 process × {ranks} threads (float32, per step)")
    rows, out = [], {}
    for method, problem in problems.items():
        n, d, width, bias, _, _ = problem
        single = _run_worker({"kind": "single", "problem": problem, "method": method, "threads": ranks}, None)
        sharded = _run_worker({"kind": "sharded", "problem": problem, "method": method, "threads": 1}, ranks)
        ratio = sharded["seconds"] / single["seconds"]
        mem = sharded["memory"] / max(single["memory"], 1.0)
        over = [name for name, run in (("1 process", single), ("sharded", sharded)) if run.get("handed_over")]
        rows.append([method + (f" (handed over to sparse: {', '.join(over)})" if over else ""),
                     f"n={n} d={d} m=2^{int(math.log2(width))} B={bias:g}", single["seconds"],
                     sharded["seconds"], ratio, "yes" if ratio <= 1.15 else "no", single["memory"] / 2**20,
                     sharded["memory"] / 2**20, mem])
        out[method] = {"problem": problem, "single": single, "sharded": sharded,
                       "per_neuron": single["seconds"] / width, "n": n}
    table(["method", "problem", f"1×{ranks} threads (s/step)", f"{ranks} ranks×1 (s/step)", "ratio",
           "within 15 %", "memory 1 process (MiB)", "memory per rank (MiB)", "per rank / 1 process"], rows)
    return out


def allreduce_constants(ranks: int, sizes: tuple[int, ...]) -> tuple[float, float]:
    header(f"MPI all-reduce (SUM) of float64 buffers, {ranks} ranks on this machine (median seconds)")
    times = _run_worker({"kind": "allreduce", "sizes": list(sizes)}, ranks)
    x = np.array([8.0 * int(s) for s in times])
    t = np.array(list(times.values()))
    beta, alpha = np.polyfit(x, t, 1)
    alpha = max(float(alpha), float(t.min()) / 2)
    table(["floats", "bytes", "seconds", "GB/s"], [[int(s), 8 * int(s), v, 8 * int(s) / v / 1e9]
                                                     for s, v in times.items()])
    print(f"fit t(b) = α + β·b: α = {alpha * 1e6:.3g} µs, β = {beta * 1e9:.3g} ns/byte "
          f"({1 / max(beta, 1e-30) / 1e9:.3g} GB/s)\n")
    return alpha, float(beta)


def model(measured: dict, alpha: float, beta: float, ranks: int = 64) -> None:
    header("Model of one sharded step (README, 'Scaling out'): T_K(m) = c·m/K + ⌈log2 K⌉·α + 2β·b_K")
    print("c: seconds per neuron per step on one machine (all its cores); b_K = 8·(2n + 9 + 4K) bytes; α, β from "
          "the all-reduce above (localhost: substitute the cluster's network values for a real estimate).\n")
    rows = []
    for method, m in measured.items():
        n, c = m["n"], m["per_neuron"]
        comm = math.ceil(math.log2(ranks)) * alpha + 2 * beta * 8 * (2 * n + EXTRA_SUMS + MAXIMA * ranks)
        beats = comm / (c * (1 - 1 / ranks))  # K ranks beat one machine above this width
        dominates = ranks * comm / c  # below this width, communication is most of a K-rank step
        rows.append([method, n, c, comm, f"{beats:.3g}", f"{dominates:.3g}"])
    table(["method", "n", "c (s/neuron/step)", f"T_comm({ranks}) (s)", f"m* where {ranks} ranks beat 1 machine",
           f"m where comm = compute at K={ranks}"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (checks that the script runs)")
    parser.add_argument("--ranks", type=int, default=2, help="ranks of the sharded run (and threads of the single)")
    parser.add_argument("--methods", default=",".join(FULL), help="comma-separated training methods to compare")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker(json.loads(args.worker))
        return
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(FULL))
    if unknown:
        parser.error(f"--methods: expected names among {', '.join(FULL)}, got {', '.join(unknown)}")
    problems = QUICK if args.quick else FULL
    measured = sharded_vs_threads({m: problems[m] for m in methods}, args.ranks)
    alpha, beta = allreduce_constants(args.ranks, QUICK_SIZES if args.quick else SIZES)
    model(measured, alpha, beta)


if __name__ == "__main__":
    main()
