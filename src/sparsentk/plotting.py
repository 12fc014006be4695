"""Figures (matplotlib, Agg backend). Each function returns the ``Figure``; :func:`save` writes PNG atomically."""

from __future__ import annotations

import io
import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from sparsentk._io import atomic_write_bytes


def save(fig: Figure, path: str | os.PathLike, *, dpi: int = 120) -> None:
    """Write ``fig`` as PNG to ``path`` atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def png_bytes(fig: Figure, *, dpi: int = 120) -> bytes:
    """``fig`` as PNG bytes (for embedding in HTML); closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def loss_curve(history, *, title: str | None = None) -> Figure:
    """Training loss against the GD step, log scale."""
    fig, ax = plt.subplots(figsize=(6, 4))
    steps = np.arange(len(history.loss))
    ax.semilogy(steps, np.maximum(history.loss, np.finfo(float).tiny), lw=1.5)
    ax.set_xlabel("GD step t")
    ax.set_ylabel(r"training loss $\frac{1}{2}\sum_i (f(x_i) - y_i)^2$")
    ax.set_title(title or f"loss ({history.method} GD, lr={history.lr:g})")
    ax.grid(True, which="both", alpha=0.3)
    return fig


def sparsity_curve(history, width: int, *, expected: float | None = None, title: str | None = None) -> Figure:
    """Active neurons per input (mean and max over inputs) as a fraction of the width, over training.

    ``expected`` draws the initial expectation (e.g. the active probability Φ̄(B)) as a dashed line.
    """
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    steps = np.arange(len(history.loss))
    ax.plot(steps, history.active_mean / width, label="mean over inputs")
    ax.plot(steps, history.active_max / width, label="max over inputs")
    if expected is not None:
        ax.axhline(expected, color="k", ls="--", lw=1, label="expected at init")
    ax.set_xlabel("GD step t")
    ax.set_ylabel(r"active fraction $|S_{on}(i,t)|\,/\,m$")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.grid(True, alpha=0.3)
    ax.set_title(title or "sparsity over training")
    ax2.plot(steps, history.flips, color="C3")
    ax2.set_xlabel("GD step t")
    ax2.set_ylabel("flips: pairs (r, i) changed since t = 0")
    ax2.grid(True, alpha=0.3)
    ax2.set_title("activation flips")
    return fig
