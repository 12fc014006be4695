"""Deep-network benchmarks (issue 12): deep_ntk against the Gram matrix, the finite-width NTK against torch.func,
a P2-sized finite NTK (time and peak memory), the Gram helper against numpy's symmetric update, neural-tangents.

``python benchmarks/run.py deep [-- --quick]``

Targets: deep_ntk (n = 4000, d = 784, B = 1, depth 10) at most 4× the float64 Gram time of the same run; the
finite-width NTK (n = 512, width 512, depth 5, float64) at least 50× faster than the torch.func Jacobian contraction,
agreeing to 1e-10. neural-tangents is timed only when a separate environment exists at ``/tmp/ntvenv``; it is never
installed by this script. To make one (about 5 minutes; no TensorFlow: its import is stubbed)::

    python3.11 -m venv /tmp/ntvenv
    /tmp/ntvenv/bin/pip install "jax==0.5.3" "jaxlib==0.5.3"
    /tmp/ntvenv/bin/pip install --no-deps neural-tangents frozendict
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sparsentk as snt
from _common import header, median_time, table, unit_data
from sparsentk._gram import gram

NT_PYTHON = Path("/tmp/ntvenv/bin/python")


def torch_jacobian_ntk(net: snt.DeepReLU, X: np.ndarray) -> np.ndarray:
    """Θ = Σ_params J Jᵀ with J from torch.func.jacrev of the PyTorch twin, one parameter tensor at a time
    (bounded memory: one n × |θ_l| Jacobian alive), float64."""
    import torch
    from torch.func import functional_call, jacrev

    module = net.to_torch().double()
    params = {k: p.detach() for k, p in module.named_parameters() if p.requires_grad}
    x = torch.from_numpy(X.astype(np.float64))
    K = torch.zeros(len(X), len(X), dtype=torch.float64)
    for name in params:
        def f(p, name=name):
            return functional_call(module, {**params, name: p}, (x,))

        J = jacrev(f)(params[name]).reshape(len(X), -1)
        K += J @ J.T
        del J
    return K.numpy()


def syrk_in_subprocess(n: int, d: int, repeats: int) -> str:
    """Median time of numpy's ``X @ X.T`` (symmetric rank-k update) in a child process; "crashed (signal N)" if the
    OpenBLAS bug numpy/numpy#19685 takes it down."""
    code = textwrap.dedent(f"""
        import time, numpy as np
        X = np.random.default_rng(0).standard_normal(({n}, {d}))
        X @ X.T
        t = []
        for _ in range({repeats}):
            s = time.perf_counter(); X @ X.T; t.append(time.perf_counter() - s)
        print(float(np.median(t)))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode != 0:
        return f"crashed (status {res.returncode})"
    return f"{float(res.stdout.strip()):.4g}"


def neural_tangents(n: int, d: int, depth: int) -> str:
    if not NT_PYTHON.exists():
        return "not installed (/tmp/ntvenv absent)"
    code = textwrap.dedent(f"""
        import json, sys, time, types, numpy as np
        # neural_tangents/__init__ imports its TensorFlow-based experimental package: stub it (not used here)
        sys.modules["neural_tangents.experimental"] = types.ModuleType("neural_tangents.experimental")
        import jax; jax.config.update("jax_enable_x64", True)
        from neural_tangents import stax
        X = np.random.default_rng(0).standard_normal(({n}, {d})); X /= np.linalg.norm(X, axis=1, keepdims=True)
        layers = []
        for _ in range({depth}):
            layers += [stax.Dense(512, W_std=2 ** 0.5, b_std=0.0, parameterization="ntk"), stax.Relu()]
        _, _, kernel_fn = stax.serial(*layers, stax.Dense(1, W_std=1.0, b_std=0.0, parameterization="ntk"))
        kernel_fn(X[:8], None, "ntk").block_until_ready()
        s = time.perf_counter(); K = np.asarray(kernel_fn(X, None, "ntk")); t = time.perf_counter() - s
        np.save("/tmp/nt_kernel.npy", K)
        print(json.dumps({{"seconds": t}}))
    """)
    res = subprocess.run([str(NT_PYTHON), "-c", code], capture_output=True, text=True)
    if res.returncode != 0:
        return "failed: " + (res.stderr.strip().splitlines() or ["?"])[-1]
    return f"{json.loads(res.stdout.strip().splitlines()[-1])['seconds']:.4g}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (checks that the script runs)")
    args = parser.parse_args(argv)
    q = args.quick
    repeats = 1 if q else 3

    # ---- infinite width against the Gram matrix
    n, d, depth, B = (600, 784, 10, 1.0) if q else (4000, 784, 10, 1.0)
    header(f"deep_ntk (n = {n}, d = {d}, B = {B}) against the float64 Gram matrix of the same run")
    X, _ = unit_data(n, d)
    snt.deep_ntk(X[:16], depth, B)  # compile / load the numba cache and the tables
    t_gram = median_time(lambda: gram(X), repeats=repeats)
    times = {L: median_time(lambda L=L: snt.deep_ntk(X, L, B), repeats=repeats) for L in (0, 1, depth)}
    per_layer = (times[depth] - times[0]) / depth
    t_syrk = median_time(lambda: X @ X.T, repeats=repeats)
    table(["n", "d", "Gram helper (s)", "numpy X @ X.T (s)", "deep_ntk depth 0 (s)", "depth 1 (s)",
           f"depth {depth} (s)", f"depth {depth} / Gram helper (target ≤ 4)", f"depth {depth} / X @ X.T",
           "per layer (s)"],
          [[n, d, t_gram, t_syrk, times[0], times[1], times[depth], times[depth] / t_gram, times[depth] / t_syrk,
            per_layer]])
    # the layer-by-layer path (used when the composed θ-table misses its accuracy check, e.g. B = 2 at depth 10)
    from sparsentk import deep_kernels

    saved = deep_kernels.COMPOSE_MIN_ENTRIES
    deep_kernels.COMPOSE_MIN_ENTRIES = 10**18
    try:
        slow = {L: median_time(lambda L=L: snt.deep_ntk(X, L, B), repeats=repeats) for L in (0, depth)}
    finally:
        deep_kernels.COMPOSE_MIN_ENTRIES = saved
    t_b2 = median_time(lambda: snt.deep_ntk(X, depth, 2.0), repeats=repeats)
    per_entry = (slow[depth] - slow[0]) / depth / (n * (n + 1) / 2) * 1e9
    table(["n", f"layer-by-layer path, depth {depth} (s)", "per layer (s)", "per layer per entry (ns)",
           f"B = 2, depth {depth} (falls back to it) (s)"],
          [[n, slow[depth], (slow[depth] - slow[0]) / depth, per_entry, t_b2]])

    # ---- neural-tangents at B = 0 (optional, separate environment)
    K0 = None
    nt = neural_tangents(n, d, depth)
    if not nt.startswith(("not", "failed")):
        K0 = snt.deep_ntk(X, depth, 0.0, train_bias=False)
        KNT = np.load("/tmp/nt_kernel.npy")
        scale = np.abs(K0 / d).max()
        off = ~np.eye(n, dtype=bool)
        err_off = float(np.abs(KNT - K0 / d)[off].max() / scale)
        exact = (depth + 1) / d  # Lemma 3.1: K(x, x) = (L+1)‖x‖², unit rows
        err_ours = float(np.abs(np.diag(K0) / d - exact).max() / exact)
        err_nt = float(np.abs(np.diag(KNT) - exact).max() / exact)
        t0 = median_time(lambda: snt.deep_ntk(X, depth, 0.0, train_bias=False), repeats=repeats)
        table(["n", "depth", "neural-tangents (s)", "deep_ntk B = 0 (s)", "off-diagonal max rel. difference",
               "diagonal rel. error vs (L+1)/d: deep_ntk", "neural-tangents"],
              [[n, depth, nt, t0, err_off, err_ours, err_nt]])
    else:
        print(f"neural-tangents: {nt}\n")

    # ---- finite width against torch.func
    n, width, depth = (64, 64, 5) if q else (512, 512, 5)
    header(f"finite-width NTK (n = {n}, width {width}, depth {depth}, B = 1, float64) against torch.func")
    X, _ = unit_data(n, 784 if not q else 32, seed=1)
    net = snt.DeepReLU(X.shape[1], width, depth, 1.0, seed=0)
    ours = median_time(lambda: snt.empirical_ntk(net, X), repeats=repeats)
    torch_jacobian_ntk(net, X[:2])  # warm-up: import and first-call costs are not the method's
    start = time.perf_counter()
    ref = torch_jacobian_ntk(net, X)
    t_torch = time.perf_counter() - start
    K = snt.empirical_ntk(net, X)
    agree = float(np.abs(K - ref).max() / np.abs(ref).max())
    table(["n", "width", "depth", "empirical_ntk (s)", "torch.func jacrev + contraction (s)",
           "speed-up (target ≥ 50)", "max rel. difference (target ≤ 1e-10)"],
          [[n, width, depth, ours, t_torch, t_torch / ours, agree]])

    # ---- a P2-sized finite NTK: time and peak memory
    n, width, depth = (200, 64, 10) if q else (2000, 512, 10)
    header(f"P2-sized finite NTK (n = {n}, width {width}, depth {depth}, float64)")
    X, _ = unit_data(n, 784, seed=2)
    net = snt.DeepReLU(784, width, depth, 0.0, seed=0)
    snt.empirical_ntk(net, X[:8])
    tracemalloc.start()
    start = time.perf_counter()
    snt.empirical_ntk(net, X)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table(["n", "width", "depth", "time (s)", "peak traced NumPy memory (MB)", "output (MB)",
           "process max RSS so far (MB)"], [[n, width, depth, seconds, peak / 2**20, n * n * 8 / 2**20, rss]])

    # ---- the Gram helper against numpy's symmetric update
    header("Gram helper (row panels of general products, mirrored) against numpy's X @ X.T (syrk)")
    rows = []
    for n in ((500, 2000) if q else (4000, 16000)):
        A = np.random.default_rng(0).standard_normal((n, 784))
        helper = median_time(lambda A=A: gram(A), repeats=repeats)
        rows.append([n, 784, helper, syrk_in_subprocess(n, 784, repeats)])
        A = None
    print(f"OpenBLAS core: {os.environ.get('OPENBLAS_CORETYPE', 'auto-detected')}")
    table(["n", "d", "gram helper (s)", "X @ X.T, numpy syrk (s)"], rows)


if __name__ == "__main__":
    main()
