"""Two-layer benchmarks (issue 13): GD per step against plain PyTorch autograd, and the width study's wall time.

``python benchmarks/run.py two_layer [-- --quick] [-- --full-grid] [-- --workers 2]``

1. GD per step on :class:`sparsentk.TwoLayer` (GeLU, both layers, n = 1024, d₀ = 8, width 4096) against the same
   step written in plain PyTorch with autograd (forward, ``backward()``, in-place update), same threads, same run,
   float64 (the model's default) and float32. Target: sparsentk at least as fast.
2. The width study's default quick grid (``sparsentk reproduce width --quick``: n up to 256, 3 seeds, families a–c;
   target under 2 minutes on 2 cores) and, with ``--full-grid``, the full grid (n up to 1024; recorded in
   BENCHMARKS.md).

``--quick`` shrinks everything to check that the script runs (numbers meaningless).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import sparsentk as snt  # noqa: E402
from _common import header, table, unit_data  # noqa: E402
from sparsentk.two_layer import kernel_checkpoints  # noqa: E402


def torch_autograd_steps(net: snt.TwoLayer, X: np.ndarray, y: np.ndarray, lr: float, steps: int,
                         losses: list[float] | None = None) -> list[float]:
    """Plain PyTorch: f = gelu(X Wᵀ) Vᵀ, L = ½‖f − y‖², autograd, in-place SGD update; seconds per step (the loss
    before each step is appended to ``losses`` when given)."""
    import torch

    dtype = torch.float64 if net.dtype == np.float64 else torch.float32
    Xt, yt = torch.from_numpy(X).to(dtype), torch.from_numpy(y).to(dtype)
    W = torch.from_numpy(net.W.copy()).requires_grad_(True)
    V = torch.from_numpy(net.V.copy()).requires_grad_(True)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        f = (torch.nn.functional.gelu(Xt @ W.T) @ V.T)[:, 0]
        loss = 0.5 * (f - yt).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            W -= lr * W.grad
            V -= lr * V.grad
            W.grad = None
            V.grad = None
        value = float(loss.detach())  # the loss is read every step, as sparsentk's history does
        times.append(time.perf_counter() - start)
        if losses is not None:
            losses.append(value)
    return times


def gd_vs_torch(quick: bool) -> None:
    n, d, width = (256, 8, 512) if quick else (1024, 8, 4096)
    steps = 5 if quick else 20
    header(f"TwoLayer GD per step against plain PyTorch autograd (GeLU, both layers), n = {n}, d0 = {d}, "
           f"width {width}, {steps} steps each, median")
    rows = []
    for dtype in (np.float64, np.float32):
        X, y = unit_data(n, d, dtype=dtype)
        y = np.sign(y) / math.sqrt(n)
        net = snt.TwoLayer(d, width, seed=0, dtype=dtype)
        lr = net.stable_lr(X)
        snt.train(net.copy(), X, y, lr=lr, steps=2)  # compile / warm up
        history = snt.train(net.copy(), X, y, lr=lr, steps=steps)
        checkpoints = set(kernel_checkpoints(steps))  # steps that also compute the NTK for the history
        ours = float(np.median([s for t, s in enumerate(history.seconds, start=1) if t not in checkpoints]))
        torch_autograd_steps(net, X, y, lr, 2)  # warm up
        losses: list[float] = []
        theirs = float(np.median(torch_autograd_steps(net, X, y, lr, steps, losses)))
        agree = float(np.max(np.abs(history.loss[:steps] - losses) / np.abs(losses)))
        rows.append([np.dtype(dtype).name, ours, theirs, theirs / ours, f"{agree:.1e}"])
    table(["dtype", "sparsentk (s/step)", "PyTorch autograd (s/step)", "PyTorch / sparsentk",
           "loss trajectories agree to (relative)"], rows)
    print("sparsentk's step includes its history (loss, movement of each layer); the steps that also compute the "
          "NTK for the history (kernel checkpoints 1, 4, 16, … and the last) are left out of its median.\n")


def width_grid(quick: bool, full: bool, workers: int) -> None:
    from sparsentk.experiments import width

    presets = [("tiny check", {"ns": (16, 32), "dims": ("sqrt",), "families": width.FAMILIES, "seeds": (0,),
                               "eps": (0.3, 0.1), "steps": (50, 100), "target": (0.3, 100), "max_factor": 4,
                               "n_boot": 50})] if quick else [("quick (reproduce width --quick)",
                                                               width.settings(True))]
    if full and not quick:
        presets.append(("full (reproduce width --full)", width.settings(False)))
    header(f"Width study wall time, {workers} worker process(es), fresh result folder")
    rows = []
    for name, kwargs in presets:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = width.width_study(**kwargs, out=tmp, workers=workers, resume=False)
            seconds = time.perf_counter() - start
        configs = len(result["records"]) + len(result["companions"])
        rows.append([name, f"n ≤ {max(kwargs['ns'])}", len(kwargs["seeds"]), configs, seconds])
    table(["grid", "sizes", "seeds", "configurations", "seconds"], rows)
    print("target: the quick grid under 120 s on 2 cores (issue 13).\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_two_layer")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that the script runs")
    parser.add_argument("--full-grid", action="store_true", help="also time the full width-study grid (long)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the width study")
    args, _ = parser.parse_known_args(argv)
    gd_vs_torch(args.quick)
    width_grid(args.quick, args.full_grid, args.workers)


if __name__ == "__main__":
    main()
