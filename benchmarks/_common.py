"""Shared helpers of the benchmarks: timing, machine description, markdown tables, unit-norm data."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable

import numpy as np

from sparsentk._io import machine_info


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def unit_data(n: int, d: int, seed: int = 0, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(dtype), rng.uniform(-1, 1, n).astype(dtype)


def header(title: str) -> None:
    info = machine_info()
    cpu = info["processor"] or info["machine"]
    print(f"### {title}\n")
    print(f"command: `{' '.join([os.path.basename(sys.executable), *sys.argv])}`  ")
    print(f"machine: {info['cpu_count']} CPUs ({cpu}), {info['platform']}, Python {info['python']}, "
          f"numpy {info['packages']['numpy']}, numba {info['packages']['numba']}, torch {info['packages']['torch']}\n")


def table(head: list[str], rows: Iterable[list[object]]) -> None:
    """Print a markdown table; ``rows`` may be a generator, and each row is printed (flushed) as it comes."""
    print("| " + " | ".join(head) + " |", flush=True)
    print("|" + "---|" * len(head), flush=True)
    for row in rows:
        print("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row) + " |", flush=True)
    print(flush=True)
