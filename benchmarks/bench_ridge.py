"""Kernel ridge regression at scale (issue 15 item 2): bias-generalized NTK regression on MNIST by matrix-free CG.

``python benchmarks/run.py ridge [-- --quick]``; the defaults are
``--n 60000 --biases 0,2 --scaling 5000,10000,20000 --dask-n 20000``.

Three tables:

1. MNIST one-vs-rest (10 right-hand sides solved together), rows scaled to unit norm (P1's assumption), for each
   bias B: test accuracy on the 10 000 test images, CG iterations, and time per stage. Panels are cached in float32
   when they fit ``--memory`` (60 000² float32 = 13.4 GiB).
2. Growth with n (at the first bias): time and peak resident memory for the sizes in ``--scaling`` (and n).
3. The kernel product (10 columns) with a 2-process Dask LocalCluster (1 thread each) against in-process (2 threads)
   at ``--dask-n`` rows, streamed (panels recomputed: compute-bound) and cached (memory-bound).
   Target: Dask within 1.5× of in-process at n = 20 000.

Sizing (an estimate from per-panel CPU time, not a measurement): one pass over the 60 000² kernel is about 75 ns per
entry on one core (≈ 2¼ min on 2 cores), one CG iteration over float32 panels about 5 s, so each bias at n = 60 000
costs about 5 min and the default run about 13 min on 2 idle cores; every extra bias adds about 5 min.

The ridge is ``--lam · n · 2Φ̄(B)`` (the usual n·λ of kernel ridge regression, in units of the kernel's diagonal
2Φ̄(B) for unit rows), so the conditioning, and the CG iteration count, stay comparable across n and B.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.special import ndtr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sparsentk as snt
from _common import header, median_time, table

ROOT = Path(__file__).resolve().parents[1]


def _reset_peak() -> None:
    try:  # Linux ≥ 4.0: resets VmHWM (the peak resident set) of this process
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_gib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _mnist(n: int, n_test: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    folder = os.environ.get("SPARSENTK_MNIST_DIR", str(ROOT.parent / "shared" / "data" / "mnist"))
    X, y = snt.data.mnist(folder, split="train", download=False)
    Xt, yt = snt.data.mnist(folder, split="test", download=False)
    X, Xt = X[:n].astype(np.float64), Xt[:n_test].astype(np.float64)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Xt /= np.linalg.norm(Xt, axis=1, keepdims=True)
    return X, y[:n], Xt, yt[:n_test]


def _progress(label: str):
    """Print a stage's progress to stderr about every tenth of the way (the tables go to stdout)."""
    shown: dict[str, int] = {}

    def report(stage: str, done: int, total: int) -> None:
        step = max(1, total // 10) if stage != "cg" else 5
        if done == total or done - shown.get(stage, 0) >= step:
            shown[stage] = done
            print(f"  [{label}] {stage} {done}" + ("" if stage == "cg" else f"/{total}"), file=sys.stderr, flush=True)

    return report


def _fit(X, y, Xt, yt, bias, args) -> dict:
    Y = np.eye(10)[y] - 0.1
    ridge = args.lam * len(X) * 2 * ndtr(-bias)
    _reset_peak()
    start = time.perf_counter()
    res = snt.kernel_ridge(X, Y, bias, ridge, X_test=Xt, solver="cg", cache_dtype=np.float32,
                           memory_budget=int(args.memory * 2**30), tol=args.tol, maxiter=args.maxiter,
                           rank=min(args.rank, len(X)), seed=0, progress=_progress(f"n={len(X)} B={bias:g}"))
    total = time.perf_counter() - start
    return {"n": len(X), "B": bias, "ridge": ridge, "accuracy": float((res.predictions.argmax(1) == yt).mean()),
            "iterations": res.iterations, "residual": float(res.residuals[-1].max()), "converged": res.converged,
            "cached": f"{res.cached_panels}/{res.panels}", "cache_gib": res.cache_bytes / 2**30,
            "peak_gib": _peak_gib(), "seconds": total, **{f"t_{k}": v for k, v in res.seconds.items()}}


def _row(r: dict) -> list:
    return [r["n"], r["B"], r["ridge"], r["accuracy"], r["iterations"], r["residual"], r["cached"], r["cache_gib"],
            r["peak_gib"], r["t_cache"], r["t_preconditioner"], r["t_solve"], r["t_predict"], r["seconds"]]


HEAD = ["n", "B", "ridge", "test accuracy", "CG iterations", "max rel. residual", "panels cached", "cache (GiB)",
        "peak RSS (GiB)", "panels (s)", "Nyström (s)", "CG (s)", "predict (s)", "total (s)"]


def _dask_table(X: np.ndarray, args) -> None:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        print("(dask.distributed not installed: Dask comparison skipped)\n")
        return
    n = len(X)
    V = np.random.default_rng(0).standard_normal((n, 10))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "X.npy"
        np.save(path, X)
        results = {}
        for cache in (False, True):
            with snt.KernelOperator(path, 1.0, cache=cache) as op:
                results[("in-process", cache)] = (median_time(lambda op=op: op @ V, args.repeats, warmup=0), op @ V)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            client.run(lambda: None)
            for cache in (False, True):
                with snt.KernelOperator(path, 1.0, cache=cache, client=client) as op:
                    op @ V[:, :1]  # warm the workers (imports, memory map)
                    results[("dask", cache)] = (median_time(lambda op=op: op @ V, args.repeats, warmup=0), op @ V)
        for cache in (False, True):
            local, (remote, out) = results[("in-process", cache)], results[("dask", cache)]
            rows.append([n, "cached" if cache else "streamed", local[0], remote, remote / local[0],
                         float(np.abs(out - local[1]).max())])
    table(["n", "panels", "in-process, 2 threads (s)", "Dask 2 processes × 1 thread (s)", "Dask / in-process",
           "max |difference|"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a check that it runs, not a measurement)")
    parser.add_argument("--n", type=int, default=60000, help="training images for table 1 (≤ 60000)")
    parser.add_argument("--n-test", type=int, default=10000, help="test images")
    parser.add_argument("--biases", default="0,2", help="comma-separated B values for table 1 (the first one is "
                        "also the bias of table 2)")
    parser.add_argument("--scaling", default="5000,10000,20000", help="comma-separated n for table 2 ('' to skip)")
    parser.add_argument("--dask-n", type=int, default=20000, help="rows of the Dask comparison (0 to skip)")
    parser.add_argument("--lam", type=float, default=1e-6, help="ridge = lam · n · 2Φ̄(B)")
    parser.add_argument("--rank", type=int, default=1000, help="Nyström rank")
    parser.add_argument("--tol", type=float, default=1e-4, help="CG relative residual tolerance")
    parser.add_argument("--maxiter", type=int, default=200)
    parser.add_argument("--memory", type=float, default=16.0, help="GiB allowed for cached panels")
    parser.add_argument("--repeats", type=int, default=1, help="timed repeats of each Dask-table product")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.n_test, args.biases, args.scaling = 2000, 1000, "0,2", "500,1000"
        args.dask_n, args.rank = 1500, 200
    biases = [float(b) for b in args.biases.split(",") if b]
    sizes = sorted({int(s) for s in args.scaling.split(",") if s} - {args.n})
    X, y, Xt, yt = _mnist(max([args.n, args.dask_n, *sizes]), args.n_test)

    header(f"Growth with n: MNIST one-vs-rest NTK ridge regression at B = {biases[0]:g} (float32 panels, "
           f"rank {args.rank})")
    table(HEAD, (_row(_fit(X[:m], y[:m], Xt, yt, biases[0], args)) for m in sizes))

    header(f"MNIST ({args.n} training, {len(Xt)} test images): test accuracy against the bias B")
    table(HEAD, (_row(_fit(X[: args.n], y[: args.n], Xt, yt, b, args)) for b in biases))
    print(f"(growth with n continues with the B = {biases[0]:g} row above)\n")

    if args.dask_n:
        header(f"Kernel product H·V (10 columns, B = 1): Dask LocalCluster against in-process, n = {args.dask_n}")
        _dask_table(X[: args.dask_n], args)


if __name__ == "__main__":
    main()
