"""Training benchmarks (issues 2 and 4): dense GD against plain PyTorch, exact sparse GD against both.

``python benchmarks/run.py training [-- --quick] [-- --skip-huge]``

The anchor is what a user would write instead: dense GD in plain PyTorch with hand-written gradients (one GEMM
forward, one backward, chunked over 512 neurons), same threads, same run. All ratios are measured side by side.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import sparsentk as snt  # noqa: E402
from _common import header, table, unit_data  # noqa: E402
from sparsentk import plotting  # noqa: E402


def torch_dense_steps(net: snt.ShallowReLU, X: np.ndarray, y: np.ndarray, lr: float, steps: int,
                      crossings: list | None = None) -> list[float]:
    """Plain PyTorch dense GD with hand-written gradients; returns seconds per step. With ``crossings`` (a list),
    appends per step after the first the pairs whose activation changed and the neurons with such a pair (counted
    outside the timed part)."""
    import torch

    torch.set_num_threads(torch.get_num_threads())
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    W, b, a = (torch.from_numpy(v.copy()) for v in (net.W, net.b, net.a))
    m, chunk = net.width, 512
    times = []
    previous: list = []
    for _ in range(steps):
        start = time.perf_counter()
        f = torch.zeros(len(yt), dtype=Xt.dtype)
        masks = []
        for lo in range(0, m, chunk):
            z = Xt @ W[lo : lo + chunk].T - b[lo : lo + chunk]
            masks.append(z >= 0)
            f += z.clamp_min(0) @ a[lo : lo + chunk]
        r = f / math.sqrt(m) - yt
        for k, lo in enumerate(range(0, m, chunk)):
            g = masks[k].to(Xt.dtype) * r[:, None]
            coef = lr * a[lo : lo + chunk] / math.sqrt(m)
            W[lo : lo + chunk] -= coef[:, None] * (g.T @ Xt)
            b[lo : lo + chunk] += coef * g.sum(0)
        times.append(time.perf_counter() - start)
        if crossings is not None:
            if previous:
                changed = [now ^ before for now, before in zip(masks, previous, strict=True)]
                crossings.append((sum(int(c.sum()) for c in changed), sum(int(c.any(0).sum()) for c in changed)))
            previous = masks
    return times


def dense_vs_torch(quick: bool) -> None:
    header("Dense GD per step: sparsentk (NumPy/BLAS) against plain PyTorch, float32, n = 2048, d = 128")
    n, d = (1024, 64) if quick else (2048, 128)
    X, y = unit_data(n, d, dtype=np.float32)
    rows = []
    for log_w in (range(12, 15) if quick else range(14, 19)):
        width = 2**log_w
        net = snt.ShallowReLU(d, width, 0.0, seed=0, dtype=np.float32)
        steps = 3
        ours = float(np.median(snt.train(net.copy(), X, y, lr=0.1, steps=steps).seconds))
        theirs = float(np.median(torch_dense_steps(net, X, y, 0.1, steps)))
        rows.append([f"2^{log_w}", ours, theirs, theirs / ours])
    table(["width", "sparsentk dense (s/step)", "PyTorch dense (s/step)", "PyTorch / sparsentk"], rows)


def sparse_targets(quick: bool) -> dict:
    header("Exact sparse GD against dense GD, float32, unit-norm Gaussian inputs, labels uniform in [−1, 1]")
    n, d, width = (1024, 64, 2**16) if quick else (2048, 128, 2**18)
    steps = 50 if quick else 200
    X, y = unit_data(n, d, dtype=np.float32)
    snt.train(snt.ShallowReLU(d, 64, 2.5, seed=0, dtype=np.float32), X[:50], y[:50], lr=0.5, steps=2,
              method="sparse")  # compile the loops before timing
    rows, out = [], {}
    for bias, lr in ((2.5, 0.5), (3.0, 2.0)):
        net = snt.ShallowReLU(d, width, bias, seed=0, dtype=np.float32)
        start = time.perf_counter()
        history = snt.train(net.copy(), X, y, lr=lr, steps=steps, method="sparse")
        total = time.perf_counter() - start
        torch_steps = torch_dense_steps(net, X, y, lr, 3)
        dense = snt.train(net.copy(), X, y, lr=lr, steps=2)
        per_torch, per_ours = float(np.median(torch_steps)), float(np.median(history.seconds))
        torch_total = per_torch * steps
        active = history.stats["active_pairs"]
        rows.append([bias, lr, width, n, per_ours, per_torch, per_torch / per_ours,
                     float(np.median(dense.seconds)) / per_ours, history.setup_seconds, total,
                     torch_total / total, history.loss[-1] / history.loss[0], active[0] / (n * width),
                     active[-1] / (n * width), float(np.mean(history.stats["candidates"] / active)),
                     1e3 * float(np.median(history.stats["loop_seconds"][1:])),
                     1e3 * float(np.median(history.stats["exam_seconds"][1:]))])
        out[str(bias)] = {"per_step": per_ours, "torch_per_step": per_torch, "total": total}
    table(["B", "lr", "width", "n", "sparse (s/step)", "PyTorch dense (s/step)", "per-step speed-up vs PyTorch",
           "per-step speed-up vs sparsentk dense", "sparse set-up (s)", f"sparse total, {steps} steps (s)",
           "end-to-end speed-up (PyTorch extrapolated)", "loss ratio L(T)/L(0)", "active fraction t=0",
           "active fraction t=T", "candidates / active pairs", "fused loop (ms/step)", "examinations (ms/step)"],
          rows)
    print(f"PyTorch end to end = its median step × {steps} (running it would take "
          f"{max(r[5] for r in rows) * steps / 60:.0f} min per bias); sparse end to end includes set-up.\n")
    return out


HUGE = """
import json, resource, sys, time
import numpy as np
import sparsentk as snt
n, d, width, bias, lr, steps = {n}, 128, {width}, 3.0, 2.0, {steps}
rng = np.random.default_rng(0)
X = rng.standard_normal((n, d)).astype(np.float32)
X /= np.linalg.norm(X, axis=1, keepdims=True)
y = rng.uniform(-1, 1, n).astype(np.float32)
net = snt.ShallowReLU(d, width, bias, seed=0, dtype=np.float32)
start = time.perf_counter()
h = snt.train(net, X, y, lr=lr, steps=steps, method="sparse")
total = time.perf_counter() - start
print(json.dumps({{"per_step": float(np.median(h.seconds)), "setup": h.setup_seconds, "total": total,
                  "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "loss_ratio": float(h.loss[-1] / h.loss[0]), "candidates": int(h.stats["candidates"][-1]),
                  "active_pairs": int(h.stats["active_pairs"][-1])}}))
"""


def huge(quick: bool) -> None:
    n, width, steps = (2000, 2**18, 20) if quick else (10_000, 2**20, 100)
    header(f"Width {width}, n = {n}, d = 128, B = 3, lr 2, {steps} steps of exact sparse GD (fresh process)")
    proc = subprocess.run([sys.executable, "-c", HUGE.format(n=n, width=width, steps=steps)], capture_output=True,
                          text=True, check=True)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    dense_gb = n * width * 4 / 2**30
    table(["sparse (s/step)", "set-up (s)", "total (s)", "peak memory (GiB)", "dense activations alone (GiB)",
           "loss ratio", "candidate pairs", "active pairs"],
          [[r["per_step"], r["setup"], r["total"], r["peak_gib"], dense_gb, r["loss_ratio"], r["candidates"],
            r["active_pairs"]]])


def speedup_plot(quick: bool) -> None:
    header("Speed-up per step against bias and width (float32, n = 2048, d = 128; lr ∝ λ(B)e^{B²}, 0.5 at B = 2.5)")
    n, d = (512, 64) if quick else (2048, 128)
    X, y = unit_data(n, d, dtype=np.float32)
    sub = X[:256].astype(np.float64)
    anchor = snt.lambda_min(snt.bias_ntk(sub, 2.5)) * math.exp(2.5**2)
    rows = []

    def measure(width: int, bias: float) -> list:
        # Theorem 3.1's rule η ∝ λ(B)e^{B²}, anchored at the issue's lr 0.5 for B = 2.5
        lr = 0.5 * snt.lambda_min(snt.bias_ntk(sub, bias)) * math.exp(bias**2) / anchor
        net = snt.ShallowReLU(d, width, bias, seed=0, dtype=np.float32)
        # medians over 10 sparse steps (its first few warm up) and 3 dense ones (dense steps do not vary)
        sparse = snt.train(net.copy(), X, y, lr=lr, steps=10, method="sparse")
        dense = snt.train(net.copy(), X, y, lr=lr, steps=3, method="dense")
        t_s, t_d = float(np.median(sparse.seconds)), float(np.median(dense.seconds))
        frac = float(sparse.stats["active_pairs"][0] / (n * width))
        flops_active = 4 * d * float(np.mean(sparse.stats["active_pairs"]))  # forward + backward, active pairs
        return [width, bias, lr, t_d, t_s, t_d / t_s, 1 / frac, frac, flops_active / t_s / 1e9,
                4 * n * d * width / t_d / 1e9]

    widths = [2**12, 2**14] if quick else [2**14, 2**16, 2**18, 2**20]
    for bias in (0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5):
        rows.append(measure(2**14 if quick else 2**16, bias))
    for width in widths:
        rows.append(measure(width, 3.0))
    table(["width", "B", "lr", "dense (s/step)", "sparse (s/step)", "speed-up", "ideal 1/active fraction",
           "active fraction", "sparse GFLOP/s on active pairs", "dense GEMM GFLOP/s"], rows)
    by_bias = [r for r in rows[:7]]
    by_width = rows[7:]
    fig = plotting.speedup_plot(by_bias, by_width)
    plotting.save(fig, HERE / "results" / "sparse_speedup.png")
    print("plot: benchmarks/results/sparse_speedup.png\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--skip-huge", action="store_true", help="skip the width-2^20 memory run")
    parser.add_argument("--only", choices=["dense", "sparse", "huge", "plot"], default=None)
    args = parser.parse_args(argv)
    parts = {"dense": dense_vs_torch, "sparse": sparse_targets, "huge": huge, "plot": speedup_plot}
    for name, fn in parts.items():
        if args.only and name != args.only:
            continue
        if name == "huge" and args.skip_huge:
            continue
        fn(args.quick)


if __name__ == "__main__":
    main()
