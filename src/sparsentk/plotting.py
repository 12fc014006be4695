"""Figures (matplotlib, Agg backend). Each function returns the ``Figure``; :func:`save` writes PNG atomically."""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from sparsentk._io import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class _Pyplot:
    """``matplotlib.pyplot`` with the Agg backend, imported on first use (keeps ``import sparsentk`` fast)."""

    def __getattr__(self, name: str) -> Any:
        import sys

        if "matplotlib.pyplot" not in sys.modules:
            import matplotlib

            matplotlib.use("Agg")
        import matplotlib.pyplot

        return getattr(matplotlib.pyplot, name)


plt = _Pyplot()


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


def _decorate(ax, xlabel: str, ylabel: str | None = None, title: str | None = None, *, legend: bool = True) -> None:
    """Axis labels, title, legend and a light grid: the finish every panel shares."""
    ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    if legend:
        ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)


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


def sparsity_curve(history, width: int, *, expected: float | None = None, title: str | None = None,
                   n: int | None = None) -> Figure:
    """Active neurons per input (mean and max over inputs) as a fraction of the width, over training, and the
    flips since initialization (as a fraction of the n·m pairs when ``n`` is given, else a count).

    ``expected`` draws the initial expectation (e.g. the active probability Φ̄(B)) as a dashed line; ``title``
    goes above both panels.
    """
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.3))
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
    ax.set_title("sparsity over training")
    if n:
        ax2.plot(steps, history.flips / (n * width), color="C3")
        ax2.set_ylabel(f"flipped pairs / (n·m) = flips / {n * width:,}")
    else:
        ax2.plot(steps, history.flips, color="C3")
        ax2.set_ylabel("flips: pairs (r, i) changed since t = 0")
    ax2.set_xlabel("GD step t")
    ax2.set_ylim(bottom=0)
    ax2.grid(True, alpha=0.3)
    ax2.set_title("activation flips since t = 0")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def audit_panels(result) -> Figure:
    """Four panels of an audit: loss with Theorem 3.1's guarantee, active neurons with the sparsity bounds, flips,
    and movement with Lemma A.8's bound (up to constants)."""
    h, s, c = result.history, result.series, result.config
    m, bias, steps = c["width"], c["bias"], np.arange(len(result.history.loss))
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax = axes[0, 0]
    ax.semilogy(steps, h.loss, label="training loss")
    if s.get("lam", 0) > 0:
        ax.semilogy(steps, h.loss[0] * (1 - s["lr"] * s["lam"] / 4) ** steps, "k--", lw=1,
                    label=r"Thm 3.1 guarantee $(1-\eta\lambda/4)^t L(0)$")
    if s.get("label_shift", 0) > 0:
        ax.semilogy(steps, s["shifted_loss"], label=f"labels shifted by c={s['label_shift']:.3g}")
    _decorate(ax, "GD step t", "loss", "convergence")
    ax = axes[0, 1]
    ax.plot(steps, h.active_mean, label="mean over inputs")
    ax.plot(steps, h.active_max, label="max over inputs")
    ax.axhline(m * np.exp(-bias**2 / 2), color="k", ls="--", lw=1, label=r"$m e^{-B^2/2}$ (c = 1)")
    ax.set_ylim(bottom=0)
    _decorate(ax, "GD step t", r"active neurons $|S_{on}(i,t)|$", f"sparsity (m = {m}, B = {bias:g})")
    ax = axes[1, 0]
    ax.plot(steps, h.flips / (c["n"] * m), color="C3", label="flipped pairs / (n m)")
    _decorate(ax, "GD step t", "fraction of pairs flipped", "flips since initialization")
    ax = axes[1, 1]
    ax.plot(steps, h.movement_w, label=r"$R_w(t)$")
    ax.plot(steps, h.movement_b, label=r"$R_b(t)$")
    for row in result.rows:
        if row.source == "P1 Lemma A.8" and np.isfinite(row.theory):
            ax.axhline(row.theory, color="k", ls="--", lw=1, label=f"Lemma A.8 bound ({row.constant})")
            break
    ax.set_yscale("log")
    _decorate(ax, "GD step t", "movement", "movement (bound up to constants)")
    fig.tight_layout()
    return fig


def sweep_panels(result: dict) -> Figure:
    """Measured quantities against B and m beside the theory's trends (bounds up to constants)."""
    rows = result["rows"]
    biases = sorted({r["bias"] for r in rows})
    widths = sorted({r["width"] for r in rows})
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for w in widths:
        sub = [r for r in rows if r["width"] == w]
        ax.semilogy([r["bias"] for r in sub], [r["active_fraction_max"] for r in sub], "o-", label=f"m = {w}")
    from scipy.special import ndtr

    grid = np.linspace(min(biases), max(biases), 100)
    ax.semilogy(grid, np.exp(-grid**2 / 2), "k--", lw=1, label=r"$e^{-B^2/2}$")
    ax.semilogy(grid, ndtr(-grid), "k:", lw=1, label=r"$\bar\Phi(B)$ (expected at init, unit inputs)")
    _decorate(ax, "bias B", "max active fraction over training", "sparsity vs bias")
    ax = axes[1]
    fitted = result.get("slopes", {}).get("log_R_w_vs_log_width", {})
    for b in biases:
        sub = [r for r in rows if r["bias"] == b]
        slope = fitted.get(str(b))
        ax.loglog([r["width"] for r in sub], [r["R_w"] for r in sub], "o-",
                  label=f"B = {b:g}" + (f": slope {slope:.2f}" if slope is not None else ""))
    if len(widths) >= 2:
        ref = [r for r in rows if r["bias"] == biases[0]]
        w0, r0 = ref[0]["width"], ref[0]["R_w"]
        ax.loglog(widths, [r0 * (w / w0) ** -0.5 for w in widths], "k--", lw=1, label=r"$\propto m^{-1/2}$")
    _decorate(ax, "width m", r"$R_w$ (max over training)", "movement vs width (Lemma A.8: slope −1/2)")
    ax.set_xticks(widths, [str(w) for w in widths])  # plain labels: 256, not 3×10²
    ax.set_xticks([], minor=True)
    ax = axes[2]
    for w in widths:
        sub = [r for r in rows if r["width"] == w]
        ax.plot([r["bias"] for r in sub], [r["rate"] for r in sub], "o-", label=f"m = {w}")
    _decorate(ax, "bias B", "fitted linear rate per step", "convergence rate vs bias")
    c = result.get("config", {})
    fig.suptitle(f"sweep: n = {c.get('n', '?')}, d = {c.get('dim', '?')}, m ∈ {{{', '.join(map(str, widths))}}}, "
                 f"B ∈ {{{', '.join(f'{b:g}' for b in biases)}}}, {c.get('steps', '?')} GD steps")
    fig.tight_layout()
    return fig


def kernel_spectrum(eigenvalues, *, bias: float, n: int, dim: int | None = None) -> Figure:
    """The eigenvalues of H∞ in decreasing order (log scale), with λ_min and λ_max marked."""
    w = np.sort(np.asarray(eigenvalues, dtype=float))[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    index = np.arange(1, len(w) + 1)
    positive = w > 0
    ax.semilogy(index[positive], w[positive], ".-", ms=3, lw=1, label=r"eigenvalues of $H^\infty$")
    if positive.any():
        ax.axhline(w[positive][0], color="C1", ls=":", lw=1, label=rf"$\lambda_{{\max}}$ = {w[0]:.3g}")
    ax.axhline(max(w[-1], np.finfo(float).tiny), color="C3", ls="--", lw=1,
               label=rf"$\lambda_{{\min}}$ = {w[-1]:.3g}" + ("" if w[-1] > 0 else " (not positive; not drawn)"))
    dims = f", d = {dim}" if dim is not None else ""
    _decorate(ax, "index k (decreasing order)", r"eigenvalue $\lambda_k$",
              f"spectrum of H∞ at B = {bias:g} (n = {n}{dims})")
    return fig


def spectrum_vs_bias(biases, lambda_min, condition, lambda0=None, *, title: str | None = None) -> Figure:
    """λ_min(H∞) and the condition number against the bias, with the fitted λ₀e^{−B²/2}."""
    biases = np.asarray(biases, dtype=float)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.3))
    if title:
        fig.suptitle(title)
    ax.semilogy(biases, lambda_min, "o-", label=r"$\lambda_{\min}(H^\infty)$")
    if lambda0:
        grid = np.linspace(biases.min(), biases.max(), 100)
        ax.semilogy(grid, lambda0 * np.exp(-grid**2 / 2), "k--", lw=1, label=rf"$\lambda_0 e^{{-B^2/2}}$, "
                    rf"$\lambda_0$={lambda0:.3g}")
    _decorate(ax, "bias B", "least eigenvalue")
    ax2.semilogy(biases, condition, "o-", color="C1")
    _decorate(ax2, "bias B", r"condition number $\lambda_{\max}/\lambda_{\min}$", legend=False)
    fig.tight_layout()
    return fig


def convergence_curves(study: dict) -> Figure:
    """P1 Figure 2: log training loss against the GD step, one colour per bias, median over seeds with the
    min–max band; the fitted final slopes in the legend."""
    biases = study["config"]["biases"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, bias in enumerate(biases):
        curves = np.array([r["loss"] for r in study["runs"] if r["bias"] == bias and not r["diverged"]])
        if not len(curves):
            continue
        steps = np.arange(curves.shape[1])
        curves = np.maximum(curves, np.finfo(float).tiny)
        s = study["per_bias"][str(bias)]
        ax.semilogy(steps, np.median(curves, axis=0), color=f"C{k}",
                    label=f"B = {bias:g}: final slope {s['slope_mean']:.3g} ± {s['slope_std']:.2g}")
        ax.fill_between(steps, curves.min(axis=0), curves.max(axis=0), color=f"C{k}", alpha=0.2)
    c = study["config"]
    ax.set_xlabel("GD step t")
    ax.set_ylabel("training loss (log scale)")
    ax.set_title(f"width {c['width']}, n = {c['n']}, d = {c['dim']}, lr rule: {c['lr_rule']} "
                 f"({len(c['seeds'])} seeds)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return fig


def layer_sparsity(study: dict) -> Figure:
    """P1 Figure 1: every layer's active fraction per SGD batch, one panel per bias (the first seed's curves bold,
    the other seeds' thin)."""
    biases = list(dict.fromkeys(run["bias"] for run in study["runs"]))
    fig, axes = plt.subplots(1, len(biases), figsize=(5 * len(biases), 4), squeeze=False, sharey=True)
    for ax, bias in zip(axes[0], biases, strict=True):
        runs = [run for run in study["runs"] if run["bias"] == bias]
        for j, run in enumerate(runs):
            curves = np.array(run["sparsity"])
            for k in range(curves.shape[1]):
                ax.plot(curves[:, k], lw=1.2 if j == 0 else 0.6, alpha=1.0 if j == 0 else 0.45, color=f"C{k}",
                        label=f"layer {k}" if j == 0 else None)
        accuracy = np.mean([run["accuracy"][-1] for run in runs])
        ax.set_title(f"B = {bias:g} (test accuracy {accuracy:.3f}"
                     + (f", mean of {len(runs)} seeds)" if len(runs) > 1 else ")"))
        ax.set_xlabel("SGD batch")
        ax.grid(True, alpha=0.3)
    axes[0, 0].set_ylabel("active fraction of units")
    axes[0, 0].set_ylim(bottom=0)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    c = study["config"]
    fig.suptitle(f"{c['depth']}-layer MLP of width {c['width']} on {c['data']} ({c['train_size']} images, "
                 f"{c['epochs']} epoch(s), SGD lr {c['lr']:g})")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def speedup_bars(timing: dict) -> Figure:
    """Seconds per GD step of the dense, the exact sparse and (when measured) the function-space method, measured
    side by side."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    names = ["dense", "sparse"]
    values = [timing["dense_seconds_per_step"], timing["sparse_seconds_per_step"]]
    if "kernel_seconds_per_step" in timing:
        names.append("kernel")
        values.append(timing["kernel_seconds_per_step"])
    ax.bar(names, values, color=["C0", "C2", "C3"][: len(names)])
    for x, v in enumerate(values):
        ax.text(x, v, f"{v * 1e3:.1f} ms", ha="center", va="bottom")
    ax.set_ylabel("median seconds per GD step")
    ax.set_title(f"width {timing['width']}, n = {timing['n']}, B = {timing['bias']:g}: "
                 f"{timing['speedup']:.1f}× faster")
    return fig


def speedup_plot(by_bias: list, by_width: list) -> Figure:
    """Sparse-vs-dense speed-up per step against the bias and the width, beside the ideal 1/(active fraction).

    Rows are ``[width, bias, lr, dense s, sparse s, speed-up, ideal, ...]`` as printed by the benchmark.
    """
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    b = np.array([[r[1], r[5], r[6]] for r in by_bias], dtype=float)
    ax.semilogy(b[:, 0], b[:, 1], "o-", label="measured speed-up")
    ax.semilogy(b[:, 0], b[:, 2], "k--", label="ideal 1 / active fraction")
    _decorate(ax, "bias B", "dense time / sparse time per step", f"width {by_bias[0][0]}")
    w = np.array([[r[0], r[5], r[6]] for r in by_width], dtype=float)
    ax2.loglog(w[:, 0], w[:, 1], "o-", base=2, label="measured speed-up")
    ax2.loglog(w[:, 0], w[:, 2], "k--", base=2, label="ideal 1 / active fraction")
    _decorate(ax2, "width m", None, f"bias {by_width[0][1]:g}")
    fig.tight_layout()
    return fig
