"""Figures of the width study and the initialization sweep (P3). Each returns a ``Figure``; save with
:func:`sparsentk.plotting.save`."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from sparsentk.plotting import _decorate, plt

_REFERENCE = ((1.0, ":", "slope 1 (counting, lazy floor)"), (1.5, "--", "slope 1.5 (P3)"),
              (2.0, "-.", "slope 2 (earlier work)"))


def _references(ax, ns: list[float], anchor: float) -> None:
    """Reference lines through (min n, anchor)."""
    x = np.array([min(ns), max(ns)], dtype=float)
    for slope, style, label in _REFERENCE:
        ax.loglog(x, anchor * (x / x[0]) ** slope, "k", ls=style, lw=0.9, alpha=0.6, label=label)


def width_exponents(study: dict) -> Figure:
    """Per series: the smallest width d₁* and the parameter count at d₁* against n (log–log), one colour per
    family, with the fitted exponents (bootstrap 95 % intervals) and reference slopes 1, 1.5 and 2."""
    cfg = study["config"]
    dims = cfg["dims"]
    fig, axes = plt.subplots(len(dims), 2, figsize=(13, 6.5 * len(dims)), squeeze=False)
    family_labels, series_labels = cfg["family_labels"], cfg["series_labels"]
    for row, d in enumerate(dims):
        for col, (key, what) in enumerate((("d1_star", "width d₁*"), ("params_star", "parameters at d₁*"))):
            ax = axes[row, col]
            anchor = []
            for k, f in enumerate(cfg["families"]):
                recs = [r for r in study["records"] if r["family"] == f and r["dim"] == d]
                pts = [(r["n"], r[key]) for r in recs if r[key] is not None]
                entry = study["fits"].get(f"{f}|{d}", {})
                fit = entry.get("width" if col == 0 else "params")
                label, marker = family_labels[f], "o"
                censored = len(recs) - len(pts)
                fallback = entry.get("fallback")
                table = "by_criterion" if col == 0 else "params_by_criterion"
                if not fit and fallback and all(table in r for r in recs):
                    # the primary target is out of reach: draw the easiest target's widths, hollow
                    pts = [(r["n"], r[table][fallback]) for r in recs if r[table].get(fallback)]
                    fit = entry[table].get(fallback)
                    label += f" at {fallback}"
                    marker = "o" if not pts else "^"
                if fit and math.isfinite(fit["slope"]):
                    label += f": {fit['slope']:.2f} [{fit['ci'][0]:.2f}, {fit['ci'][1]:.2f}]"
                if censored:
                    label += f" ({censored} censored at ε = {cfg['target'][0]:g})"
                if pts:
                    x, y = np.array(pts, dtype=float).T
                    jitter = 1.0 + 0.015 * (k - len(cfg["families"]) / 2)
                    ax.loglog(x * jitter, y, marker, color=f"C{k}", ms=4, alpha=0.7, label=label,
                              mfc="none" if marker == "^" else f"C{k}")
                    anchor.append(float(np.min(y)))
                    if fit and math.isfinite(fit["slope"]):
                        grid = np.array([min(x), max(x)])
                        ax.loglog(grid, np.exp(fit["intercept"]) * grid ** fit["slope"], color=f"C{k}", lw=1.2)
                else:
                    ax.plot([], [], "o", color=f"C{k}", label=label)
            if anchor:
                _references(ax, cfg["ns"], min(anchor))
            eps, steps = cfg["target"]
            _decorate(ax, "training points n", what,
                      f"{series_labels[str(d)]}: {what} (ε = {eps:g}, T = {steps})", legend=False)
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1, frameon=False)
            ax.set_xticks(cfg["ns"], [str(n) for n in cfg["ns"]])
            ax.set_xticks([], minor=True)
    fig.suptitle("How wide is wide enough? smallest width at which GD reaches relative loss ε within T steps "
                 "(fitted exponent [bootstrap 95 % CI])", fontsize=10)
    fig.tight_layout()
    return fig


def width_companions(study: dict) -> Figure:
    """No-training companions against d₁/n: σ_min of φ(W₀X), λ_min and κ of K₀, and the certificate ratio q
    (up to constants), one line per n (first seed, first series)."""
    comps = study["companions"]
    d = study["config"]["dims"][0]
    seed = study["config"]["seeds"][0]
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    for k, n in enumerate(study["config"]["ns"]):
        c = next((c for c in comps if c["n"] == n and c["dim"] == d and c["seed"] == seed), None)
        if c is None:
            continue
        rows = c["rows"]
        x = np.array([r["width"] / n for r in rows])
        for ax, key in zip(axes, ("sigma_min", "lambda_min", "kappa", "certificate"), strict=True):
            y = np.array([r[key] if r[key] is not None else np.nan for r in rows], dtype=float)
            good = np.isfinite(y) & (y > 0)
            ax.loglog(x[good], y[good], "o-", color=f"C{k}", ms=3, label=f"n = {n}")
    titles = (("σ_min(φ(W₀X)) = μ", "μ is 0 below d₁ = n"), ("λ_min(K₀)", ""), ("κ(K₀)", ""),
              ("certificate q = 4νβ‖f₀−y‖/μ³", "up to constants; q ≲ C suffices"))
    for ax, (title, note) in zip(axes, titles, strict=True):
        ax.axvline(1.0, color="k", lw=0.8, ls=":")
        _decorate(ax, "d₁ / n", None, title + (f"\n({note})" if note else ""))
        lo, hi = ax.get_xlim()
        ticks = [t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32) if lo <= t <= hi]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xticks([], minor=True)
    fig.suptitle(f"no-training companions (family (a) initialization, {study['config']['series_labels'][str(d)]}, "
                 f"seed {seed})", fontsize=10)
    fig.tight_layout()
    return fig


def lazy_sweep(study: dict) -> Figure:
    """P3 Fig. 1: train and test accuracy (teacher labels) against ω₂ with 2-standard-deviation bars and P3's
    published test accuracy; relative movement of each layer."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.3))
    summary = study["summary"]
    styles = {"ce": ("C0", "cross-entropy"), "mse": ("C1", "MSE")}
    for loss, rows in summary.items():
        color, name = styles[loss]
        w = np.array([r["omega2"] for r in rows])
        for ax, key, marker in ((axes[0], "test_accuracy", "o-"), (axes[1], "train_accuracy", "s-")):
            y = np.array([r[key] for r in rows])
            err = 2 * np.array([r[key + "_std"] for r in rows])
            ax.errorbar(w, y, yerr=err, fmt=marker, color=color, ms=4, capsize=3, label=f"ours, {name}")
        for key, style, layer in (("movement_first", "o-", "first layer W"), ("movement_second", "s--", "output V")):
            y = np.array([r[key] for r in rows])
            err = 2 * np.array([r[key + "_std"] for r in rows])
            axes[2].errorbar(w, y, yerr=err, fmt=style, color=color, ms=4, capsize=3, label=f"{layer}, {name}")
    pub = study["published"]
    axes[0].plot(pub["omega2"], pub["test_accuracy"], "k*--", ms=7, lw=1, label="P3 published (CE, 300 epochs)")
    c = study["config"]
    setting = (f"{c['train_size']} training / {c['test_size']} test images of {c['data']}, {c['epochs']} epoch(s), "
               f"{c['runs']} run(s) per point, student width {c['student_width']}")
    _decorate(axes[0], "ω₂ (ω₁ω₂ fixed)", "test accuracy (teacher labels)", "test accuracy vs ω₂")
    _decorate(axes[1], "ω₂ (ω₁ω₂ fixed)", "training accuracy (teacher labels)", "training accuracy vs ω₂")
    _decorate(axes[2], "ω₂ (ω₁ω₂ fixed)", "‖θ(T) − θ(0)‖ / ‖θ(0)‖ (Frobenius)", "relative movement per layer")
    axes[2].set_yscale("log")
    fig.suptitle(f"lazy vs active (P3 Fig. 1): {setting}; bars = 2 standard deviations", fontsize=10)
    fig.tight_layout()
    return fig
