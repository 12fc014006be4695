"""Exact GD in function space (``method="kernel"``, issue 14) against the sparse engine and plain PyTorch.

``python benchmarks/run.py function_space [-- --quick] [-- --only targets|widths|largest|crossover|crossings]``

- ``targets``: n = 2048, d = 128, float32, width 2^18: B = 2.5, lr 0.5 (≥ 150× per step, ≥ 80× end to end against
  PyTorch) and B = 3, lr 2 (≥ 200× per step); medians over 200 steps, PyTorch over 3 steps in the same run, with
  the time per stage (n × n product, certificate checks, crossings, examinations, evaluation);
- ``widths``: B = 3, lr 2 at widths 2^18, 2^20, 2^22 (median step at 2^22 within 4× of 2^18); PyTorch is measured
  at 2^18 and extrapolated from its per-GEMM rate (4·n·d·width flops per step) where it does not fit;
- ``largest``: widths 2^22, 2^23, ... at n = 2048, B = 3, 100 steps each in a fresh process, until one fails or
  exceeds 24 GiB; peak memory, and the share of W, W(0) and the pair lists;
- ``crossover``: kernel against sparse per step over widths at n = 2048, B = 2.5 (the ``method="auto"`` rule);
- ``crossings``: the benchmark problems' crossings per step counted by plain PyTorch dense GD (independent of the
  engine) beside the engine's own count, and the floor they put on any exact method's step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import sparsentk as snt  # noqa: E402
from _common import header, table, unit_data  # noqa: E402
from bench_training import torch_dense_steps  # noqa: E402
from sparsentk import _function_space  # noqa: E402
from sparsentk._function_space import RESYNC_EVERY, due_fraction, prefers_kernel  # noqa: E402

STAGES = ("product_seconds", "check_seconds", "crossing_seconds", "exam_seconds", "evaluate_seconds")


def _ms(history: snt.History, name: str) -> float:
    values = history.stats.get(name)
    if values is None or not np.isfinite(values[1:]).any():
        return float("nan")
    return 1e3 * float(np.nanmedian(values[1:]))


def _warm(d: int) -> None:
    X, y = unit_data(64, d, dtype=np.float32)
    for method in ("kernel", "sparse"):
        snt.train(snt.ShallowReLU(d, 256, 2.0, seed=0, dtype=np.float32), X, y, lr=0.5, steps=3, method=method)


def targets(quick: bool) -> None:
    header("Exact GD in function space against the sparse engine and PyTorch, float32, unit inputs, labels in [−1, 1]")
    n, d, width = (512, 64, 2**15) if quick else (2048, 128, 2**18)
    steps = 30 if quick else 200
    X, y = unit_data(n, d, dtype=np.float32)
    _warm(d)
    rows, stage_rows = [], []
    for bias, lr in ((2.5, 0.5), (3.0, 2.0)):
        net = snt.ShallowReLU(d, width, bias, seed=0, dtype=np.float32)
        start = time.perf_counter()
        hk = snt.train(net.copy(), X, y, lr=lr, steps=steps, method="kernel")
        total_k = time.perf_counter() - start
        start = time.perf_counter()
        hs = snt.train(net.copy(), X, y, lr=lr, steps=steps, method="sparse")
        total_s = time.perf_counter() - start
        per_torch = float(np.median(torch_dense_steps(net, X, y, lr, 3)))
        per_k, per_s = float(np.median(hk.seconds)), float(np.median(hs.seconds))
        switched = int(np.nanmax(hk.stats["fallback"]))
        rows.append([bias, lr, width, n, per_k, per_s, per_torch, per_torch / per_k, per_s / per_k,
                     hk.setup_seconds, total_k, per_torch * steps / total_k, total_s,
                     float(np.max(np.abs(hk.loss - hs.loss) / hs.loss)), hk.loss[-1] / hk.loss[0], switched])
        stats = hk.stats
        stage_rows.append([bias, lr, *(_ms(hk, s) for s in STAGES),
                           float(np.nanmedian(stats["due"][1:])), float(np.nanmedian(stats["updated"][1:])),
                           float(np.nanmedian(stats["reexamined"][1:])), float(np.nanmedian(stats["crossings"][1:])),
                           float(np.nanmedian(stats["exact_pairs"][1:])),
                           float(np.nanmax(stats["drift"])) if np.isfinite(stats["drift"]).any() else float("nan"),
                           hk.active_mean[0] * n])
    table(["B", "lr", "width", "n", "kernel (s/step)", "sparse (s/step)", "PyTorch dense (s/step)",
           "per-step speed-up vs PyTorch", "per-step speed-up vs sparse", "kernel set-up (s)",
           f"kernel total, {steps} steps (s)", "end-to-end speed-up (PyTorch extrapolated)",
           f"sparse total, {steps} steps (s)", "max relative loss difference kernel vs sparse", "loss ratio L(T)/L(0)",
           "handed over to sparse"], rows)
    print(f"PyTorch end to end = its median step × {steps}; kernel end to end includes set-up.\n")
    table(["B", "lr", *(f"{s.removesuffix('_seconds')} (ms/step)" for s in STAGES), "due neurons/step",
           "brought up to date/step", "examined/step", "crossings/step", "pairs computed exactly/step",
           "largest drift", "active pairs t=0"],
          stage_rows)
    print("Stages: the n × n product f ← f − ηH_A e; the certificate checks of the due neurons (from the residuals "
          "alone, with X_Aᵀ ΔE and X_Aᵀ ē and the near pairs exactly, or bringing up to date); applying crossings "
          "to f and the counts C; examinations against every input; the evaluation (loss, exact movement, "
          f"resynchronization every {RESYNC_EVERY} steps). Medians over the steps in which this engine ran (it "
          "hands over to the sparse engine when more than FALLBACK_FRACTION of the neurons are brought up to date "
          "at FALLBACK_PATIENCE consecutive steps).\n")
    print("At larger n the fixed part grows as n²: the product reads G + 1 and C = AᵀA, 12n² bytes, per step "
          "(1.2 GB at n = 10 000); the fraction of neurons that need attention per step grows "
          "about as n^1.5 (the speed of a pair ∝ √|A_r|, |A_r| ∝ n·p; the density of its margins near the threshold "
          "∝ n; see due_fraction) and each costs ∝ |A_r|·d, or ∝ (listed pairs)·d when its pairs crossed.\n")


WIDE = """
import json, resource, sys, time
import numpy as np
import sparsentk as snt
n, d, width, bias, lr, steps = {n}, {d}, {width}, 3.0, 2.0, {steps}
rng = np.random.default_rng(0)
X = rng.standard_normal((n, d))
X /= np.linalg.norm(X, axis=1, keepdims=True)
X = X.astype(np.float32)
y = rng.uniform(-1, 1, n).astype(np.float32)
net = snt.ShallowReLU(d, width, bias, seed=0, dtype=np.float32)
start = time.perf_counter()
h = snt.train(net, X, y, lr=lr, steps=steps, method="{method}")
total = time.perf_counter() - start
stat = lambda name: float(np.nanmedian(h.stats[name][1:])) if name in h.stats else float("nan")
print(json.dumps({{"per_step": float(np.median(h.seconds)), "setup": h.setup_seconds, "total": total,
                  "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "loss_ratio": float(h.loss[-1] / h.loss[0]), "due": stat("due"), "updated": stat("updated"),
                  "crossings": stat("crossings"),
                  "fallback": int(np.nanmax(h.stats["fallback"])) if "fallback" in h.stats else 0}}))
"""


def _wide(n: int, d: int, width: int, steps: int, method: str = "kernel") -> dict:
    """Train in a fresh process (its peak memory is its own); the result, or the last line of its error."""
    code = WIDE.format(n=n, d=d, width=width, steps=steps, method=method)
    proc = subprocess.run([sys.executable, "-c", code],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def widths(quick: bool) -> None:
    header("Median step against the width at B = 3, lr 2 (kernel and sparse methods, a fresh process per run)")
    n, d = (512, 64) if quick else (2048, 128)
    sizes = [2**14, 2**16, 2**18] if quick else [2**18, 2**20, 2**22]
    steps = 20 if quick else 100
    X, y = unit_data(n, d, dtype=np.float32)
    base = snt.ShallowReLU(d, sizes[0], 3.0, seed=0, dtype=np.float32)
    per_torch = float(np.median(torch_dense_steps(base, X, y, 2.0, 3)))
    rate = 4 * n * d * sizes[0] / per_torch  # PyTorch's flops per second at the smallest width
    rows = []
    first = {}
    for width in sizes:
        dense = 4 * n * d * width / rate
        for method in ("kernel", "sparse"):
            r = _wide(n, d, width, steps, method)
            if "error" in r:
                rows.append([width, method, r["error"], *[""] * 10])
                continue
            first.setdefault(method, r["per_step"])
            rows.append([width, method, r["per_step"], r["per_step"] / first[method], dense,
                         "measured" if width == sizes[0] else "extrapolated (per-GEMM rate)", dense / r["per_step"],
                         r["setup"], r["peak_gib"], r["due"], r["updated"], r["crossings"], r["fallback"]])
    table(["width", "method", "s/step (median)", "step / smallest width's", "PyTorch dense (s/step)", "dense",
           "per-step speed-up", "set-up (s)", "peak memory (GiB)", "due neurons/step", "brought up to date/step",
           "crossings/step", "handed over to sparse"], rows)
    print(f"Medians over {steps} steps. PyTorch is measured at width {sizes[0]} and extrapolated to the others from "
          "its rate there (4·n·d·width flops per step): the dense activations alone take 8·n·width bytes.\n")


def largest(quick: bool) -> None:
    header("Largest width that trains 100 steps at n = 2048, B = 3 within 24 GiB (kernel method)")
    n, d = (512, 64) if quick else (2048, 128)
    sizes = [2**16, 2**17] if quick else [2**22, 2**23, 2**24]
    rows = []
    for width in sizes:
        r = _wide(n, d, width, 10 if quick else 100)
        if "error" in r:
            rows.append([width, "failed: " + r["error"], "", "", ""])
            break
        weights = 2 * width * d * 4 / 2**30  # W and W(0) in float32
        rows.append([width, r["per_step"], r["total"], r["peak_gib"], weights])
        if r["peak_gib"] > 24:
            break
    table(["width", "s/step", "total (s)", "peak memory (GiB)", "W and W(0) (GiB)"], rows)
    print("The rest of the peak: the pair lists (idx 4 B, init 1 B, zref 8 B, eref 8 B, flag 1 B per listed pair, "
          "about four times the active pairs), the examination blocks and the n × n arrays (12 n² bytes).\n")


def crossover(quick: bool) -> None:
    header("Kernel against sparse per step, against the width and the step (n = 2048, d = 128, B = 2.5, float32)")
    n, d = (512, 64) if quick else (2048, 128)
    sizes = [2**10, 2**12, 2**14] if quick else [2**12, 2**14, 2**16, 2**18]
    X, y = unit_data(n, d, dtype=np.float32)
    _warm(d)
    frac = snt.training.expected_active_fraction(2.5, X)
    rows = []
    for lr in (0.5, 0.05):
        for width in sizes:
            net = snt.ShallowReLU(d, width, 2.5, seed=0, dtype=np.float32)
            times, due_measured = {}, float("nan")
            for method in ("kernel", "sparse"):
                h = snt.train(net.copy(), X, y, lr=lr, steps=20, method=method)
                times[method] = float(np.median(h.seconds[2:]))
                if method == "kernel":
                    due_measured = float(np.nanmedian(h.stats["due"][1:])) / width
            due = due_fraction(X, y, 2.5, width, lr)
            rows.append([width, lr, times["kernel"], times["sparse"], times["sparse"] / times["kernel"], due,
                         due_measured, "kernel" if prefers_kernel(n, d, width, frac, due) else "sparse"])
    table(["width", "lr", "kernel (s/step)", "sparse (s/step)", "sparse / kernel", "estimated due fraction",
           "measured due fraction", "auto picks"], rows)
    print("The auto rule should pick the kernel method exactly where sparse / kernel > 1 (AUTO_KERNEL_DUE and "
          "AUTO_KERNEL_RATIO in sparsentk._function_space).\n")


def crossings(quick: bool) -> None:
    header("Crossings per step in the benchmark problems: plain PyTorch dense GD against the kernel engine's count")
    n, d, width = (512, 64, 2**15) if quick else (2048, 128, 2**18)
    steps, long = (6, 30) if quick else (20, 200)
    X, y = unit_data(n, d, dtype=np.float32)
    _warm(d)
    rows = []
    for bias, lr in ((2.5, 0.5), (3.0, 2.0)):
        net = snt.ShallowReLU(d, width, bias, seed=0, dtype=np.float32)
        counted: list = []
        per_torch = float(np.median(torch_dense_steps(net, X, y, lr, steps, crossings=counted)))
        hs = snt.train(net.copy(), X, y, lr=lr, steps=long, method="sparse")
        fallback = _function_space.FALLBACK_FRACTION
        _function_space.FALLBACK_FRACTION = float("inf")  # no hand-over: the engine counts every step
        try:
            hk = snt.train(net.copy(), X, y, lr=lr, steps=long, method="kernel")
        finally:
            _function_space.FALLBACK_FRACTION = fallback
        pairs, neurons = (np.array(c, dtype=float) for c in zip(*counted, strict=True))
        engine = np.asarray(hk.stats["crossings"][1:], dtype=float)
        differ = np.abs(engine[: len(pairs)] - pairs)
        per_neuron = float(np.median(hs.seconds)) / width  # the sparse step's time per neuron
        product = 1e-3 * _ms(hk, "product_seconds")
        ratio = float(np.sum(neurons) / np.sum(pairs))  # neurons with a crossing per crossing pair
        floor_early = product + float(np.median(neurons)) * per_neuron
        floor_long = product + float(np.median(engine)) * ratio * per_neuron
        rows.append([bias, lr, width, float(np.median(pairs)), float(np.median(engine[: len(pairs)])),
                     float(differ.max()), float(np.median(neurons)) / width, float(np.median(engine)),
                     float(np.max(engine)), per_torch, per_neuron * 1e9, product, per_torch / floor_early,
                     per_torch / floor_long, float(np.median(hk.seconds)), float(np.median(hs.seconds))])
    table(["B", "lr", "width", f"pairs crossing/step, steps 1–{steps - 1} (PyTorch)",
           "same steps (kernel engine)", "largest difference at a step", "neurons with a crossing (share of width)",
           f"pairs crossing/step, median over {long} steps (engine)", f"largest over {long} steps",
           "PyTorch dense (s/step)", "sparse step per neuron (ns)", "n × n product (s)",
           f"speed-up floor allows, steps 1–{steps - 1}", f"speed-up floor allows, {long} steps",
           f"kernel, no hand-over (s/step, median of {long})", "sparse (s/step)"], rows)
    print(f"The floor: the n × n product plus the neurons whose active set changes, each at the sparse engine's "
          "cost per neuron (its median step / width): a method that updates a crossing neuron no faster than a "
          f"sparse step cannot beat it. Over {long} steps the crossing neurons are the engine's crossing pairs "
          "times the neurons-per-pair ratio PyTorch counted in the first steps. Float32 networks: PyTorch's GEMM "
          "and the engine round differently, so a pair within rounding of its threshold may be counted by one "
          "only.\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--only", choices=["targets", "widths", "largest", "crossover", "crossings"], default=None)
    args = parser.parse_args(argv)
    parts = {"targets": targets, "widths": widths, "largest": largest, "crossover": crossover,
             "crossings": crossings}
    for name, fn in parts.items():
        if args.only and name != args.only:
            continue
        fn(args.quick)


if __name__ == "__main__":
    main()
