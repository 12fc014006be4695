"""Micro-benchmarks of the memory patterns inside the sparse GD loop (width 2^18, d = 128, float32, all threads).

They explain where the fused loop's time goes (BENCHMARKS.md, "Where the sparse time goes") and record designs
that were measured and not built:

- *gathers*: per-neuron dot products with gathered rows of X by the engine's own four-row ``_dot4``, against X of
  1 MiB (the real case), X of a few cache-hot rows, and the same loop tiled over neuron blocks × input ranges so
  each range of X stays in L2;
- *rows*: reading W and writing the updated rows to a second buffer (what the engine does, so a revert is free)
  against updating them in place;
- *dual form*: per-neuron pre-activations updated through cached Gram blocks of the candidates,
  Δz = G[C, A]·Δα, against the gathered backward-and-forward loop (``primal``), at early- and late-training sizes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numba
import numpy as np

from sparsentk import _sparse_kernels as kern

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, median_time, table


@numba.njit(inline="always", fastmath=True)
def _row_dots(X, W, r, idx, lo, hi, out):  # pragma: no cover - compiled
    """out[q] = w_r·x_idx[q] for q in [lo, hi), four rows at a time with the engine's own ``_dot4``."""
    zero = np.float32(0)
    q = lo
    while q + 4 <= hi:
        out[q], out[q + 1], out[q + 2], out[q + 3] = kern._dot4(X, W[r], idx[q], idx[q + 1], idx[q + 2],
                                                                 idx[q + 3], zero)
        q += 4
    while q < hi:
        out[q] = kern._dot(X, W[r], idx[q], zero)
        q += 1


@numba.njit(parallel=True, fastmath=True)
def gathered_dots(X, W, idx, ptr, out, parts):  # pragma: no cover - compiled
    m = W.shape[0]
    for p in numba.prange(parts):
        for r in range(p * m // parts, (p + 1) * m // parts):
            _row_dots(X, W, r, idx, ptr[r], ptr[r + 1], out)


@numba.njit(parallel=True, fastmath=True)
def tiled_dots(X, W, idx, tile_ptr, out, parts, block):  # pragma: no cover - compiled
    """``gathered_dots`` by tiles: a block of neurons against one input range at a time (``tile_ptr[r, j]`` is
    where neuron r's inputs of range j start in its input-sorted list)."""
    m = W.shape[0]
    ranges = tile_ptr.shape[1] - 1
    for p in numba.prange(parts):
        lo, hi = p * m // parts, (p + 1) * m // parts
        for r0 in range(lo, hi, block):
            for j in range(ranges):
                for r in range(r0, min(r0 + block, hi)):
                    _row_dots(X, W, r, idx, tile_ptr[r, j], tile_ptr[r, j + 1], out)


@numba.njit(parallel=True, fastmath=True)
def update_rows(W, W_next, c, parts):  # pragma: no cover - compiled
    """W_next = W − c·W row by row (``W_next`` may be ``W``: in place)."""
    m, d = W.shape
    for p in numba.prange(parts):
        for r in range(p * m // parts, (p + 1) * m // parts):
            for k in range(d):
                W_next[r, k] = W[r, k] - c * W[r, k]


@numba.njit(parallel=True, fastmath=True)
def primal(X, W, W_next, idx, ptr, n_act, residual, c, f, parts):  # pragma: no cover - compiled
    """Gathered backward over the first ``n_act[r]`` pairs, update, gathered forward over all of neuron r's pairs."""
    m, d = W.shape
    for p in numba.prange(parts):
        g = np.zeros(d, dtype=np.float32)
        for r in range(p * m // parts, (p + 1) * m // parts):
            lo, hi = ptr[r], ptr[r + 1]
            g[:] = 0
            for q in range(lo, lo + n_act[r]):
                i = idx[q]
                for k in range(d):
                    g[k] += residual[i] * X[i, k]
            for k in range(d):
                W_next[r, k] = W[r, k] - c * g[k]
            for q in range(lo, hi):
                i = idx[q]
                s = np.float32(0)
                for k in range(d):
                    s += X[i, k] * W_next[r, k]
                f[p, i] += max(s, 0.0)


@numba.njit(parallel=True, fastmath=True)
def dual(G, g_ptr, z, alpha, idx, ptr, residual, c, f, parts):  # pragma: no cover - compiled
    """Δα_j = −c ρ_j over the active candidates j, Δz = Σ_j Δα_j G[j, C] from the neuron's cached Gram block."""
    m = ptr.shape[0] - 1
    for p in numba.prange(parts):
        dz = np.zeros(256)
        for r in range(p * m // parts, (p + 1) * m // parts):
            lo, hi = ptr[r], ptr[r + 1]
            size = hi - lo
            dz[:size] = 0.0
            db = 0.0
            for j in range(size):
                if z[lo + j] >= 0:
                    da = -c * residual[idx[lo + j]]
                    alpha[lo + j] += da
                    db += da
                    row = g_ptr[r] + j * size
                    for u in range(size):
                        dz[u] += da * G[row + u]
            for u in range(size):
                z[lo + u] += dz[u] + db
                f[p, idx[lo + u]] += max(z[lo + u], 0.0)


def _lists(rng: np.random.Generator, m: int, n: int, per: int) -> tuple[np.ndarray, np.ndarray]:
    """``per`` random inputs out of n for each of m neurons, sorted per neuron, as (flat indices, pointers)."""
    idx = np.sort(rng.integers(0, n, (m, per)), axis=1).astype(np.int32)
    return idx.ravel(), np.arange(m + 1) * per


def gathers(m: int, d: int, n: int, parts: int) -> None:
    header(f"Gathered dot products, width {m}, d = {d}, 17 inputs per neuron, {parts} threads")
    rng = np.random.default_rng(0)
    W = rng.standard_normal((m, d)).astype(np.float32)
    per = 17
    out = np.empty(m * per, dtype=np.float32)
    rows = []

    def row(label: str, fn: Callable[[], object]) -> None:
        seconds = median_time(fn)
        rows.append([label, 1e3 * seconds, m * per * d * 2 / seconds / 1e9])

    hot = rng.standard_normal((16, d)).astype(np.float32)
    idx, ptr = _lists(rng, m, 16, per)
    row("X of 16 rows (cache-hot)", partial(gathered_dots, hot, W, idx, ptr, out, parts))
    X = rng.standard_normal((n, d)).astype(np.float32)
    idx, ptr = _lists(rng, m, n, per)
    row(f"X of {n} rows ({X.nbytes >> 10} KiB), as in training", partial(gathered_dots, X, W, idx, ptr, out, parts))
    for ranges, block in ((4, 64), (4, 256), (8, 256)):
        edges = np.arange(ranges + 1) * n // ranges
        tile_ptr = np.stack([(idx.reshape(m, per) < e).sum(axis=1) for e in edges], axis=1) + ptr[:-1, None]
        row(f"same, tiled: {block} neurons × {ranges} input ranges",
            partial(tiled_dots, X, W, idx, tile_ptr, out, parts, block))
    table(["pattern", "ms", "GFLOP/s"], rows)


def weight_rows(m: int, d: int, parts: int) -> None:
    header(f"Reading and updating every weight row, width {m}, d = {d}, float32")
    W = np.random.default_rng(0).standard_normal((m, d)).astype(np.float32)
    W_next = np.empty_like(W)
    c = np.float32(1e-9)
    table(["pattern", "ms"], [["to a second buffer (the engine)", 1e3 * median_time(partial(update_rows, W, W_next, c,
                                                                                           parts))],
                              ["in place", 1e3 * median_time(partial(update_rows, W, W, c, parts))]])


def dual_form(m: int, d: int, n: int, parts: int) -> None:
    header(f"Gathered (primal) against cached-Gram (dual) updates, width {m}, d = {d}, n = {n}")
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((n, d)) / np.sqrt(d)).astype(np.float32)
    W = rng.standard_normal((m, d)).astype(np.float32)
    W_next = np.empty_like(W)
    residual = rng.standard_normal(n).astype(np.float32)
    f = np.zeros((parts, n))
    rows = []
    for size, active, when in ((9, 7, "B = 3, early"), (20, 16, "B = 2.5, early"), (27, 21, "B = 2.5, late")):
        idx, ptr = _lists(rng, m, n, size)
        n_act = np.full(m, active)
        G = rng.standard_normal(m * size * size).astype(np.float32)
        g_ptr = np.arange(m) * size * size
        z = np.where(rng.random(m * size) < active / size, 1.0, -1.0)
        alpha = np.zeros(m * size)
        t_primal = median_time(partial(primal, X, W, W_next, idx, ptr, n_act, residual, np.float32(1e-3), f, parts))
        t_dual = median_time(partial(dual, G, g_ptr, z, alpha, idx, ptr, residual, 1e-12, f, parts))
        rows.append([when, size, active, 1e3 * t_primal, 1e3 * t_dual, t_primal / t_dual, G.nbytes / 2**20])
    table(["sizes like", "candidates per neuron", "active per neuron", "primal (ms)", "dual (ms)", "dual speed-up",
           "Gram blocks (MiB)"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="width 2^15 instead of 2^18")
    args = parser.parse_args(argv)
    m, d, n = (2**15 if args.quick else 2**18), 128, 2048
    parts = numba.get_num_threads()
    gathers(m, d, n, parts)
    weight_rows(m, d, parts)
    dual_form(m, d, n, parts)


if __name__ == "__main__":
    main()
