"""The conditioning study's claims rows and report section (P2 = arXiv 2305.08813; paper-notes §5).

Built from :func:`sparsentk.experiments.conditioning.conditioning_study`'s JSON-ready result (∞ may come back as
``None`` from JSON): every claim with its numbers and a plain verdict.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from sparsentk.experiments.conditioning import ACTIVATIONS, REGIMES


def _f(x: float | None, fmt: str = ".4g") -> str:
    return "∞" if x is None or (isinstance(x, float) and math.isinf(x)) else format(x, fmt)


def _seed_mean(values: list) -> float | None:
    """Mean over seeds; ``None`` (∞ or undefined) when a seed's value is missing."""
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    return float(np.mean(values))


def _monotone(values: Sequence[float | None], sign: int) -> bool:
    """Strictly decreasing (sign −1) or increasing (+1), every value defined."""
    if any(v is None or not math.isfinite(v) for v in values):
        return False
    return all(sign * (b - a) > 0 for a, b in itertools.pairwise(values))


def claim_rows(study: dict[str, Any]) -> list[dict[str, str]]:
    """The report's claims rows for P2's conditioning results and our bias extension: numbers and a verdict."""
    c = study["config"]
    rows: list[dict[str, str]] = []

    def add(claim: str, source: str, measured: str, verdict: str) -> None:
        rows.append({"claim": claim, "source": source, "measured": measured, "verdict": verdict})

    am = study["angle_map"]
    theta = np.array(am["theta"])
    ok, small = True, []
    for d, phi in am["phi_kernel"].items():
        phi = np.array(phi)
        cross = am["crossover"][d]
        inside = (theta > 0) & (theta < cross - 0.5)
        outside = (theta > cross + 0.5) & (theta < 180)
        ok &= bool(np.all(phi[inside] > theta[inside]) and np.all(phi[outside] < theta[outside]))
        k = int(np.argmax(theta > 0))
        small.append(f"L={d}: φ({theta[k]:g}°) = {phi[k]:.1f}° (width {c['width']}: "
                     f"{am['phi_finite'][d][k]:.1f}°), θ_c = {cross:.1f}°")
    add("ReLU enlarges small gradient angles: φ > θ_in below a crossover θ_c(L), φ < θ_in above it",
        "P2 Lemma 3.1, Fig. 1",
        "; ".join(small) + f"; infinite-width kernel vs Lemma 3.1: {am['kernel_vs_lemma_max_deg']:.1g}° at most",
        "reproduced" if ok else "not reproduced")

    lim = study["limits"]
    deepest = str(max(int(d) for d in lim["phi"]))
    phis = {t: v["kernel"] for t, v in lim["phi"][deepest].items()}
    gap = max(abs(v - lim["angle_limit"]) for v in phis.values())
    trail = ", ".join(f"L={d}: {lim['phi'][d][next(iter(phis))]['kernel']:.2f}°" for d in lim["phi"])
    add("the gradient angle of every non-parallel pair tends to arccos(1/4) ≈ 75.52° with depth (slowly)",
        "P2 Thm 3.5",
        f"at L = {deepest}: " + ", ".join(f"θ_in = {t}°: φ = {v:.2f}°" for t, v in phis.items())
        + f" (θ_in = {next(iter(phis))}° by depth: {trail})",
        "reproduced" if gap < 0.5 else "not reproduced")

    parts, good = [], True
    for n, row in lim["kappa"].items():
        k = row["by_depth"][deepest]
        rel = abs(k / row["limit"] - 1)
        good &= rel < 0.01 and abs(k - row["limit"]) < abs(k - row["printed"])
        parts.append(f"n={n}: κ(L={deepest}) = {k:.4f} vs (n+3)/3 = {row['limit']:.4f}, printed (n+4)/3 = "
                     f"{row['printed']:.4f}")
    add("κ → (n+3)/3 for unit, pairwise non-parallel inputs (P2 prints (n+4)/3, an arithmetic slip)",
        "P2 Thm 4.3", "; ".join(parts),
        "reproduced with (n+3)/3; the printed (n+4)/3 is not" if good else "not reproduced")

    sets = study["depth"]
    lin_parts, lin_ok = [], True
    for name, entry in sets.items():
        gram = entry["gram_kappa"]
        for regime in REGIMES:
            inf = entry["infinite"]["linear"][regime]["kappa"]
            if gram is None or not math.isfinite(gram):
                same = all(v is None or not math.isfinite(v) for v in inf)
                lin_parts.append(f"{name}, {regime}: κ(Gram) = ∞ (n > d) and κ = ∞ at every depth" if same else
                                 f"{name}, {regime}: κ(Gram) = ∞ but κ finite at some depth")
                lin_ok &= same
                continue
            rel = max(abs(v / gram - 1) for v in inf)
            lin_ok &= rel < 1e-8
            fin = [_seed_mean(v) for v in entry["finite"]["linear"][regime]["kappa"]]
            last = fin[-1]
            lin_parts.append(f"{name}, {regime}: κ(Gram) = {gram:.4g}; infinite width max |κ/κ(Gram) − 1| = "
                             f"{rel:.1e}; width {c['width']} at L = {c['finite_depths'][-1]}: "
                             + ("∞" if last is None else f"{last / gram:.2f}× κ(Gram)"))
    add("a linear network keeps κ = κ(Gram) at every depth", "P2 §4", "; ".join(lin_parts),
        "reproduced (infinite width; finite nets drift, see the section)" if lin_ok else "not reproduced")

    for name, entry in sets.items():
        inf_angle = entry["infinite"]["relu"]["all"]["min_angle"]
        fin_angle = [_seed_mean(v) for v in entry["finite"]["relu"]["all"]["min_angle"]]
        lin_angle = entry["infinite"]["linear"]["all"]["min_angle"]
        grows = _monotone(inf_angle, +1)
        fin_rho = _spearman(c["finite_depths"], fin_angle)
        add(f"the minimum gradient angle grows with depth for ReLU and stays at the input angle for a linear net "
            f"({name})", "P2 Fig. 3",
            f"ReLU, all layers: {inf_angle[0]:.2f}° (L={c['depths'][0]}) → {inf_angle[-1]:.2f}° "
            f"(L={c['depths'][-1]}) at infinite width, width {c['width']}: {_f(fin_angle[0], '.2f')}° → "
            f"{_f(fin_angle[-1], '.2f')}° (Spearman ρ with depth {fin_rho:+.2f}); linear: "
            f"{min(lin_angle):.2f}°–{max(lin_angle):.2f}°",
            "reproduced" if grows and fin_rho > 0.8 and max(lin_angle) - min(lin_angle) < 1e-6 else
            ("partly reproduced" if grows else "not reproduced"))

        measured, verdicts = [], []
        for regime in ("first", "all"):
            inf = entry["infinite"]["relu"][regime]["kappa"][1:]
            fin = [_seed_mean(v) for v in entry["finite"]["relu"][regime]["kappa"]]
            fin = [v for d, v in zip(c["finite_depths"], fin, strict=True) if d >= 1]
            lin = entry["infinite"]["linear"][regime]["kappa"][1:]
            below = all(r is not None and (q is None or r < q) for r, q in zip(inf, lin, strict=True))
            rho = _spearman(list(range(len(fin))), [math.inf if v is None else v for v in fin])
            verdicts.append(_monotone(inf, -1) and below and rho < -0.8)
            measured.append(f"{'first layer only' if regime == 'first' else 'all layers'}: infinite width "
                            f"{_f(inf[0])} (L=1) → {_f(inf[-1])} (L={c['depths'][-1]}), width {c['width']} "
                            f"{_f(fin[0])} → {_f(fin[-1])} (Spearman ρ {rho:+.2f}); linear "
                            f"{_f(lin[-1])}")
        add(f"κ falls with depth and ReLU stays below linear (proved with the first layer trained) ({name})",
            "P2 Thm 4.2, Fig. 3", "; ".join(measured),
            "reproduced (both regimes)" if all(verdicts) else (
                "reproduced (first layer only)" if verdicts[0] else "not reproduced"))

    rise = lim["rise"]
    orth = rise["orthogonal"]
    add("with all layers trained κ can rise with depth on well-separated data", "paper-notes §5 (on P2 Thm 4.2)",
        f"5 random unit points in ℝ¹⁰: κ(L=1) > κ(L=0) in {rise['rises']['all']} of {rise['draws']} draws with all "
        f"layers trained, {rise['rises']['first']} with the first layer only; 5 orthonormal inputs, all layers: "
        + " → ".join(f"{v:.3f}" for v in orth["all"]) + " (L = 0…3), first layer only: "
        + " → ".join(f"{v:.3f}" for v in orth["first"]),
        "holds" if orth["all"][1] > orth["all"][0] or rise["rises"]["all"] > 0 else "not observed")

    chaotic = lim["chaotic"]
    if chaotic:
        parts, good = [], True
        for bias, by_depth in chaotic.items():
            d = str(max(int(k) for k in by_depth))
            m = by_depth[d]
            good &= m["min_angle"] > 89.0 and m["kappa"] < 1.01
            parts.append(f"B={bias}: L={d}: min φ = {m['min_angle']:.3f}°, κ = {m['kappa']:.6f}"
                         f" (L={min(by_depth, key=int)}: {by_depth[min(by_depth, key=int)]['min_angle']:.2f}°, "
                         f"κ = {by_depth[min(by_depth, key=int)]['kappa']:.4f})")
        add("with a bias B > 0 the network is chaotic (χ₁ > 1): φ → 90° and κ → 1 at infinite width",
            "paper-notes §5 (derived)", f"{c['limit_n'][-1]} unit points in ℝ^{{{c['synthetic_dim']}}}: "
            + "; ".join(parts), "reproduced" if good else "not reproduced")

    per = study["bias"]["per_bias"]
    parts, consistent = [], True
    last = c["finite_depths"][-1]
    for bias, row in per.items():
        star, part = row["reliable_depth"], row["parting_depth"]
        star_text = "∞" if star is None or not math.isfinite(star) else f"{star:.1f}"
        parts.append(f"B={bias}: χ₁ = {row['chi1']:.3f}, L* = {star_text}, measured "
                     + ("none up to L = " + str(last) if part is None else f"L = {part}"))
        if star is None or not math.isfinite(star) or star > last:
            consistent &= part is None or (star is not None and part >= min(star, last) / 2)
        else:
            consistent &= part is not None and star / 2 - 1 <= part <= 2 * star + 1
    add(f"width-{c['width']} networks follow the infinite-width kernel only up to L* ≈ log(m/2)/(2 log χ₁) layers",
        "paper-notes §5 (derived, up to constants)",
        "; ".join(parts) + f" (parting: more than {c['part_threshold']:.0%} of the inputs with an NTK diagonal off by "
        "more than 50 %, at that depth and beyond)",
        "consistent (within a factor 2)" if consistent else "not consistent")
    return rows


def _spearman(x: Sequence[float], y: Sequence[float | None]) -> float:
    from scipy.stats import spearmanr

    y = [math.inf if v is None else v for v in y]
    if len(x) < 3 or len(set(y)) < 2:
        return math.nan
    return float(spearmanr(x, y).statistic)


def report_blocks(study: dict[str, Any], figures: dict[str, str]) -> list[tuple]:
    """The report's section for the conditioning study (blocks as in :func:`report.render`)."""
    c = study["config"]
    blocks: list[tuple] = [
        ("h2", "Gradient angles and NTK conditioning with depth (P2), and what a bias does"),
        ("p", f"P2's bias-free network (weights N(0, 1), √2 fan-in scaling, every layer trained unless said), at "
              f"infinite width (deep_ntk, exact recursion) and at width {c['width']} (DeepReLU, exact empirical NTK "
              f"without a Jacobian; seeds {', '.join(map(str, c['seeds']))}). Angles are between model gradients, "
              f"φ = arccos(K(x,z)/√(K(x,x)K(z,z))); κ = λ_{{max}}/λ_{{min}}. Depth L counts hidden layers "
              f"(L = 0 is the linear model w·x, whose NTK is the Gram matrix)."),
    ]
    if "angle_map" in figures:
        blocks.append(("img", figures["angle_map"], "P2 Fig. 1: gradient angle against input angle"))
    for name, entry in study["depth"].items():
        if f"depth_{name}" in figures:
            what = (f"P2's synthetic set, {entry['rows']} points from N(0, I{entry['dim']}) (raw)"
                    if entry["kind"] == "synthetic" else
                    f"{entry['kind']}, {entry['batches']} batch(es) of {entry['batch_size']} training images (raw "
                    f"pixels in [0, 1])")
            blocks.append(("img", figures[f"depth_{name}"], f"P2 Fig. 3 on {what}"))
    header = ["set", "net", "trained", "κ at L = 0 / 1 / 5 / 10 (∞ width)", f"κ, width {c['width']} (mean)",
              "min angle (°) at L = 0 / 1 / 5 / 10 (∞ width)", f"min angle, width {c['width']} (mean)"]
    rows = []
    picks = [d for d in (0, 1, 5, 10) if d in c["depths"]]
    fpicks = [d for d in picks if d in c["finite_depths"]]
    for name, entry in study["depth"].items():
        for act in ACTIVATIONS:
            for regime in REGIMES:
                inf = entry["infinite"][act][regime]
                fin = entry["finite"][act][regime]
                rows.append([name, act, "all layers" if regime == "all" else "first layer",
                             " / ".join(_f(inf["kappa"][c["depths"].index(d)]) for d in picks),
                             " / ".join(_f(_seed_mean(fin["kappa"][c["finite_depths"].index(d)])) for d in fpicks),
                             " / ".join(f"{inf['min_angle'][c['depths'].index(d)]:.2f}" for d in picks),
                             " / ".join(_f(_seed_mean(fin["min_angle"][c["finite_depths"].index(d)]), ".2f")
                                        for d in fpicks)])
    blocks.append(("table", header, rows))
    b = study["bias"]
    blocks.append(("p", f"The bias axis: {b['n']} unit points in ℝ^{{{b['dim']}}} (the synthetic points normalized: "
                        f"the variance-preserving normalization c_B = 1/M₂(B) needs unit inputs), biases "
                        f"{'trained' if b['train_bias'] else 'fixed at B'}, all layers trained. B > 0 makes the "
                        f"network chaotic: χ₁ = c_B·Φ̄(B) > 1, the NTK diagonal grows like χ₁^{{L}} while the "
                        f"off-diagonal stays bounded. A finite network's fluctuations grow by χ₁ per layer too; "
                        f"inputs with no active unit in some layer (\"dead\", zero gradient) make its NTK singular."))
    if "bias" in figures:
        blocks.append(("img", figures["bias"], "the bias axis: minimum angle, κ, and where width-512 networks leave "
                                               "the infinite-width kernel"))
    last = c["finite_depths"][-1]
    brow = []
    for bias, row in b["per_bias"].items():
        k = c["depths"].index(last)
        dead = row["finite"]["dead"][-1]
        brow.append([bias, f"{row['chi1']:.4f}", f"{row['fixed_point']:.4f}", _f(row["reliable_depth"], ".1f"),
                     "–" if row["parting_depth"] is None else str(row["parting_depth"]),
                     _f(row["infinite"]["kappa"][k]), _f(_seed_mean(row["finite"]["kappa"][-1])),
                     f"{row['infinite']['min_angle'][k]:.2f}", _f(_seed_mean(row["finite"]["min_angle"][-1]), ".2f"),
                     f"{np.mean(dead):.1f} of {b['n']}"])
    blocks.append(("table", ["B", "χ₁", "ρ*", "predicted L*", "measured parting depth", f"κ∞ (L={last})",
                             f"κ, width {c['width']}", "min angle ∞ (°)", f"min angle, width {c['width']}",
                             "dead inputs (mean)"], brow))
    lim = study["limits"]
    krows = [[n] + [f"{row['by_depth'][str(d)]:.4f}" for d in c["limit_depths"]]
             + [f"{row['limit']:.4f}", f"{row['printed']:.4f}"] for n, row in lim["kappa"].items()]
    blocks.append(("table", ["n unit points"] + [f"κ at L = {d}" for d in c["limit_depths"]]
                   + ["(n+3)/3", "P2's printed (n+4)/3"], krows))
    seed_rows = []
    for name, entry in study["depth"].items():
        for act in ACTIVATIONS:
            for regime in REGIMES:
                fin = entry["finite"][act][regime]
                for k, d in enumerate(c["finite_depths"]):
                    for j, s in enumerate(c["seeds"]):
                        seed_rows.append([name, act, regime, str(d), str(s), _f(fin["kappa"][k][j]),
                                          _f(fin["min_angle"][k][j], ".3f"), _f(fin["deviation"][k][j], ".3f")])
    for bias, row in b["per_bias"].items():
        fin = row["finite"]
        for k, d in enumerate(c["finite_depths"]):
            for j, s in enumerate(c["seeds"]):
                seed_rows.append([f"unit, B={bias}", "relu", "all", str(d), str(s), _f(fin["kappa"][k][j]),
                                  _f(fin["min_angle"][k][j], ".3f"), _f(fin["deviation"][k][j], ".3f")])
    blocks.append(("details", f"every width-{c['width']} network ({len(seed_rows)} rows)",
                   [("table", ["set", "net", "trained", "L", "seed", "κ", "min angle (°)",
                               "mean abs. Δcos φ vs ∞ width"], seed_rows)]))
    return blocks
