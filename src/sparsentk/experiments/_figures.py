"""Figures of the deep-network studies (P2): conditioning against depth, and depth against MNIST accuracy.

Each function takes a study's JSON-ready result and returns a matplotlib ``Figure``; write it with
:func:`sparsentk.plotting.save`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from sparsentk import plotting

plt = plotting.plt
SUPER = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _depth_colors(depths) -> dict:
    cmap = plt.get_cmap("viridis")
    depths = list(depths)
    return {d: cmap(0.9 * k / max(1, len(depths) - 1)) for k, d in enumerate(depths)}


def depth_accuracy(study: dict) -> Figure:
    """P2 §5: training loss per SGD step by depth (mean over seeds), final test accuracy against P2's table, and
    the held-out loss after the selection steps at each common learning rate."""
    c = study["config"]
    per = study["per_depth"]
    depths = [int(d) for d in per]
    colors = _depth_colors(depths)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.3))
    ax = axes[0]
    for d in depths:
        curves = [r["loss"] for r in study["runs"] if r["depth"] == d]
        length = min(len(x) for x in curves)
        curve = np.mean([x[:length] for x in curves], axis=0)
        lrs = ", ".join(f"{lr:g}" for lr in sorted(set(per[str(d)]["lr"])))
        ax.semilogy(np.arange(1, length + 1), curve, color=colors[d], lw=1.3, label=f"L = {d} (lr {lrs})")
    ax.axvline(c["selection_steps"], color="0.6", ls=":", lw=1)
    plotting._decorate(ax, "SGD step", "training cross-entropy (batch)", "training loss by depth")
    ax = axes[1]
    acc = [100 * np.array(per[str(d)]["accuracy"]) for d in depths]
    mean = [a.mean() for a in acc]
    ax.errorbar(depths, mean, yerr=[[m - a.min() for m, a in zip(mean, acc, strict=True)],
                                    [a.max() - m for m, a in zip(mean, acc, strict=True)]],
                fmt="o-", capsize=3, label=f"measured ({len(c['seeds'])} seed(s))")
    p2 = {int(k): v for k, v in study["p2"].items()}
    ax.plot(sorted(p2), [p2[d] for d in sorted(p2)], "s--", color="k", lw=1, label="P2 (full MNIST)")
    plotting._decorate(ax, "hidden layers L", "test accuracy (%)",
                       f"{c['epochs']} epoch(s) on {c['train_size']} {c['data']} images")
    ax = axes[2]
    for k, (lr, row) in enumerate(study["common_lr"].items()):
        values = [row[str(d)] for d in depths]
        ok = [(d, v) for d, v in zip(depths, values, strict=True) if v is not None]
        if ok:
            ax.plot(*zip(*ok, strict=True), "o-", color=f"C{k}", label=f"lr {lr}")
        bad = [d for d, v in zip(depths, values, strict=True) if v is None]
        if bad:
            ax.plot(bad, [ax.get_ylim()[1]] * len(bad), "x", color=f"C{k}", ms=8)
    plotting._decorate(ax, "hidden layers L", "held-out cross-entropy",
                       f"after {c['selection_steps']} steps at a common lr (× = diverged)")
    fig.tight_layout()
    return fig


def _finite_band(ax, depths, per_seed, color, marker, label=None, offset=0.0, log=False) -> None:
    """Mean over seeds with the min–max range as error bars (∞/missing values left out)."""
    xs, mean, low, high = [], [], [], []
    for d, values in zip(depths, per_seed, strict=True):
        ok = [v for v in values if v is not None and np.isfinite(v)]
        if len(ok) != len(values) or not ok:
            continue
        m = float(np.exp(np.mean(np.log(ok)))) if log else float(np.mean(ok))
        xs.append(d + offset)
        mean.append(m)
        low.append(max(0.0, m - min(ok)))
        high.append(max(0.0, max(ok) - m))
    if xs:
        ax.errorbar(xs, mean, yerr=[low, high], fmt=marker, color=color, ms=4, capsize=2, lw=0.8, label=label)


def angle_map(study: dict) -> Figure:
    """P2 Fig. 1: gradient angle φ against input angle θ_in by depth (Lemma 3.1, infinite width; width-m networks
    as markers), the linear diagonal, crossovers; and the map at a fixed depth for each bias (infinite width)."""
    am = study["angle_map"]
    c = study["config"]
    theta = np.array(am["theta"])
    depths = [int(d) for d in am["phi_theory"]]
    colors = _depth_colors(depths)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    ax.plot(theta, theta, "k--", lw=1, label="linear (φ = θ_in)")
    for d in depths:
        ax.plot(theta, am["phi_theory"][str(d)], color=colors[d], lw=1.5, label=f"ReLU, L = {d}")
        ax.plot(theta[::3], np.array(am["phi_finite"][str(d)])[::3], "o", color=colors[d], ms=3, alpha=0.8)
        x = am["crossover"][str(d)]
        ax.plot([x], [x], "x", color=colors[d], ms=7)
    ax.axhline(am["limit"], color="0.5", ls=":", lw=1, label="arccos(1/4) = 75.5°")
    ax.set_xlim(0, 180)
    ax.set_ylim(0, 180)
    plotting._decorate(ax, "input angle θ_in (degrees)", "gradient angle φ (degrees)",
                       f"lines: infinite width; dots: width {c['width']} ({am['finite_seeds']} seeds); × crossover")
    for k, (bias, phi) in enumerate(am["phi_bias"].items()):
        ax2.plot(theta, phi, color=f"C{k}", lw=1.5, label=f"B = {bias}")
    ax2.plot(theta, theta, "k--", lw=1, label="φ = θ_in")
    ax2.axhline(90, color="0.5", ls=":", lw=1)
    ax2.set_xlim(0, 180)
    ax2.set_ylim(0, 180)
    plotting._decorate(ax2, "input angle θ_in (degrees)", "gradient angle φ (degrees)",
                       f"with a bias, depth {c['bias_angle_depth']}, unit inputs, infinite width")
    fig.tight_layout()
    return fig


def depth_curves(study: dict, name: str) -> Figure:
    """P2 Fig. 3 on one data set: minimum pairwise gradient angle and κ against depth, ReLU solid, linear dashed,
    infinite width as lines, width-m networks as markers (mean and min–max over seeds); top row all layers
    trained, bottom row the first layer only (P2 Thm 4.2)."""
    entry = study["depth"][name]
    c = study["config"]
    depths = c["depths"]
    fdepths = c["finite_depths"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
    titles = {"all": "all layers trained", "first": "first layer only"}
    for row, regime in enumerate(("all", "first")):
        for col, key in enumerate(("min_angle", "kappa")):
            ax = axes[row, col]
            for act, style, color, off in (("relu", "-", "C0", -0.08), ("linear", "--", "C3", 0.08)):
                inf = entry["infinite"][act][regime][key]
                ys = [np.nan if v is None or not np.isfinite(v) else v for v in inf]
                ax.plot(depths, ys, style, color=color, lw=1.6, label=f"{act}, infinite width")
                _finite_band(ax, fdepths, entry["finite"][act][regime][key], color, "o" if act == "relu" else "s",
                             f"{act}, width {c['width']}", off, log=key == "kappa")
                if key == "kappa" and all(np.isnan(ys)):
                    ax.text(0.02, 0.04 if act == "relu" else 0.12,
                            f"{act}: κ = ∞ at every depth (singular: more points than dimensions)"
                            + (", as ReLU's L = 0" if act == "linear" and np.isnan(
                                entry["infinite"]["relu"][regime][key][0] or np.nan) else ""),
                            transform=ax.transAxes, color=color, fontsize=8)
            if key == "kappa":
                ax.set_yscale("log")
            plotting._decorate(ax, "hidden layers L" if row == 1 else "",
                               "min pairwise gradient angle (°)" if key == "min_angle" else "κ = λmax/λmin",
                               titles[regime], legend=row == 0 and col == 0)
    dim = str(entry["dim"]).translate(SUB)
    what = (f"{entry['rows']} points from N(0, I{dim})" if entry["kind"] == "synthetic" else
            f"{entry['kind']}: {entry['batches']} batch(es) of {entry['batch_size']} images (κ averaged over batches)")
    fig.suptitle(f"Gradient angles and conditioning against depth — {what}; {len(c['seeds'])} seeds")
    fig.tight_layout()
    return fig


def bias_axis(study: dict) -> Figure:
    """The bias axis: minimum gradient angle and κ against depth for each B (infinite width lines, width-m
    markers), and the finite networks' relative NTK-diagonal deviation with the predicted reliable depths."""
    b = study["bias"]
    c = study["config"]
    depths, fdepths = c["depths"], c["finite_depths"]
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    for k, (bias, row) in enumerate(b["per_bias"].items()):
        color = f"C{k}"
        for ax, key in ((axes[0], "min_angle"), (axes[1], "kappa")):
            ys = [np.nan if v is None or not np.isfinite(v) else v for v in row["infinite"][key]]
            ax.plot(depths, ys, "-", color=color, lw=1.6, label=f"B = {bias}")
            _finite_band(ax, fdepths, row["finite"][key], color, "o", None, 0.06 * (k - 1.5), log=key == "kappa")
        axes[2].plot(fdepths, row["diag_off"], "o-", color=color, label=f"B = {bias}")
        if row["reliable_depth"] is not None and np.isfinite(row["reliable_depth"]):
            axes[2].axvline(row["reliable_depth"], color=color, ls=":", lw=1.2)
    axes[0].axhline(90, color="0.5", ls=":", lw=1)
    axes[1].set_yscale("log")
    plotting._decorate(axes[0], "hidden layers L", "min pairwise gradient angle (°)",
                       f"{b['n']} unit points in ℝ{str(b['dim']).translate(SUPER)}; lines ∞ width, "
                       f"dots width {c['width']}")
    plotting._decorate(axes[1], "hidden layers L", "κ = λmax/λmin", "κ (missing dots: κ = ∞, dead inputs)",
                       legend=False)
    axes[2].axhline(c["part_threshold"], color="k", ls="--", lw=1)
    axes[2].set_ylim(-0.03, 1.03)
    plotting._decorate(axes[2], "hidden layers L", "fraction of inputs with |K_m(x,x)/K_∞(x,x) − 1| > 1/2",
                       "finite vs infinite width (dotted: predicted L*)")
    fig.tight_layout()
    return fig
