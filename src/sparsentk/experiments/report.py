"""The end-to-end study behind ``make demo``: every experiment, a claims table, ``report.md`` and ``report.html``.

Parts (each saved as ``parts/<name>.json`` as soon as it finishes, so ``resume=True`` skips finished parts):
``convergence`` (P1 Fig. 2), ``sparsity`` (P1 Fig. 1), ``kernel`` (H∞ spectrum against the bias, empirical NTK
convergence), ``audit`` (P1's bounds against a training run), ``timing`` (exact sparse vs dense GD),
``conditioning`` and ``depth_accuracy`` (P2: gradient angles and NTK conditioning with depth, MNIST accuracy by
depth; :mod:`sparsentk.experiments.deep_parts`), ``width`` and ``lazy`` (P3: the width GD needs against n, and the
lazy/active initialization sweep; :mod:`sparsentk.experiments.p3_parts`).
Built on the public API only.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import sparsentk as snt
from sparsentk import plotting
from sparsentk._io import atomic_write_json, atomic_write_text, machine_info
from sparsentk.experiments import deep_parts, p3_parts
from sparsentk.experiments.convergence import convergence_study
from sparsentk.experiments.mnist_sparsity import mnist_sparsity_study, resolve_data

PARTS = ("convergence", "sparsity", "kernel", "audit", "timing", *deep_parts.PARTS, *p3_parts.PARTS)


def settings(quick: bool, seed: int, data: str, data_dir: str | None) -> dict[str, dict[str, Any]]:
    """The configuration of every part (quick: two to three minutes on 2 idle cores; full: tens of minutes).

    Quick mode trains the MLP on 10 000 images in batches of 64: the same number of SGD steps as 20 000 images in
    batches of 128, at half the arithmetic.

    ``data="auto"`` is resolved here (MNIST when its files are found locally, else digits) because the training
    budget depends on it: the 1437 digit images get more epochs.
    """
    data = resolve_data(data, data_dir)
    epochs = {("mnist", True): 3, ("mnist", False): 5, ("digits", True): 30, ("digits", False): 60}[data, quick]
    return {
        "convergence": {"biases": [0.0, 0.5, 1.0, 1.5], "width": 128, "n": 32, "dim": 16, "steps": 2000,
                        "seeds": [seed, seed + 1, seed + 2] if quick else [seed + k for k in range(5)],
                        "lr_rule": "theorem",
                        "widths": [128, 1024, 8192] if quick else [128, 1024, 8192, 2**16]},
        "sparsity": {"biases": [0.5, 1.0, 1.5], "data": data, "data_dir": data_dir,
                     "train_limit": 10000 if quick else None, "test_limit": 2000 if quick else None,
                     "batch_size": 64 if quick else 128, "epochs": epochs,
                     "seeds": [seed, seed + 1] if quick else [seed + k for k in range(3)]},
        "kernel": {"n": 300 if quick else 1000, "dim": 16, "biases": [float(b) for b in np.arange(0, 3.01, 0.25)],
                   "ntk_widths": [2**10, 2**12, 2**14] if quick else [2**10, 2**12, 2**14, 2**16],
                   "ntk_bias": 1.5, "ntk_n": 60, "seed": seed},
        "audit": {"n": 160, "dim": 16, "width": 4096 if quick else 16384, "bias": 1.5, "steps": 200,
                  "test_fraction": 0.25, "seed": seed},
        "timing": {"n": 1024 if quick else 2048, "dim": 64 if quick else 128, "width": 2**16 if quick else 2**18,
                   "bias": 2.5, "lr": 0.5, "steps": 10 if quick else 30, "seed": seed},
        **deep_parts.settings(quick, seed, data, data_dir),
        **p3_parts.settings(quick, seed, data, data_dir),
    }


# ------------------------------------------------------------------------------------------------ parts
def run_convergence(cfg: dict, say: Callable[[str], None]) -> dict:
    return convergence_study(biases=tuple(cfg["biases"]), width=cfg["width"], n=cfg["n"], dim=cfg["dim"],
                             steps=cfg["steps"], seeds=tuple(cfg["seeds"]), lr_rule=cfg["lr_rule"],
                             widths=tuple(cfg.get("widths", ())), callback=say)


def run_sparsity(cfg: dict, say: Callable[[str], None]) -> dict:
    return mnist_sparsity_study(biases=tuple(cfg["biases"]), data=cfg["data"], data_dir=cfg["data_dir"],
                                train_limit=cfg["train_limit"], test_limit=cfg["test_limit"], epochs=cfg["epochs"],
                                batch_size=cfg["batch_size"], seeds=tuple(cfg["seeds"]), callback=say)


def run_kernel(cfg: dict, say: Callable[[str], None]) -> dict:
    X, _ = snt.data.sphere(cfg["n"], cfg["dim"], seed=cfg["seed"])
    lam, kappa, seconds = [], [], []
    for b in cfg["biases"]:
        start = time.perf_counter()
        K = snt.bias_ntk(X, b)
        seconds.append(time.perf_counter() - start)
        w = np.linalg.eigvalsh(K)
        lam.append(float(w[0]))
        kappa.append(float(w[-1] / w[0]) if w[0] > 0 else math.inf)
    say("kernel: spectrum against the bias")
    biases = np.array(cfg["biases"])
    lam0 = snt.theory.fit_lambda0(biases, np.array(lam))
    deviation = np.array(lam) / (lam0 * np.exp(-biases**2 / 2))
    Xs, _ = snt.data.sphere(cfg["ntk_n"], cfg["dim"], seed=cfg["seed"] + 1)
    H = snt.bias_ntk(Xs, cfg["ntk_bias"])
    errors = []
    for width in cfg["ntk_widths"]:
        errs = [float(np.abs(snt.empirical_ntk(snt.ShallowReLU(cfg["dim"], width, cfg["ntk_bias"], seed=s), Xs)
                             - H).mean()) for s in range(3)]
        errors.append(float(np.mean(errs)))
    slope = float(np.polyfit(np.log(cfg["ntk_widths"]), np.log(errors), 1)[0])
    say("kernel: empirical NTK against H∞")
    return {"biases": cfg["biases"], "lambda_min": lam, "condition_number": kappa, "lambda0": lam0,
            "fit_ratio": deviation.tolist(), "seconds": seconds, "ntk_widths": cfg["ntk_widths"],
            "ntk_errors": errors, "ntk_slope": slope}


def run_audit(cfg: dict, say: Callable[[str], None], out: Path) -> dict:
    X, y = snt.data.sphere(cfg["n"], cfg["dim"], seed=cfg["seed"])
    cut = int(cfg["n"] * (1 - cfg["test_fraction"]))
    result = snt.audit(X[:cut], y[:cut], width=cfg["width"], bias=cfg["bias"], steps=cfg["steps"], seed=cfg["seed"],
                       X_test=X[cut:], y_test=y[cut:])
    result.write(out / "audit")
    say("audit: done")
    return {"rows": [r.to_dict() for r in result.rows], "config": result.config}


def run_timing(cfg: dict, say: Callable[[str], None]) -> dict:
    rng = np.random.default_rng(cfg["seed"])
    X = rng.standard_normal((cfg["n"], cfg["dim"])).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = rng.uniform(-1, 1, cfg["n"]).astype(np.float32)
    histories = {}
    for method in ("kernel", "sparse", "dense"):
        net = snt.ShallowReLU(cfg["dim"], cfg["width"], cfg["bias"], seed=cfg["seed"], dtype=np.float32)
        start = time.perf_counter()
        histories[method] = snt.train(net, X, y, lr=cfg["lr"], steps=cfg["steps"], method=method)
        histories[method + "_total"] = time.perf_counter() - start
        say(f"timing: {method} GD")
    dense, sparse, kernel = histories["dense"], histories["sparse"], histories["kernel"]
    return {**cfg, "dense_seconds_per_step": float(np.median(dense.seconds)),
            "kernel_seconds_per_step": float(np.median(kernel.seconds)), "kernel_total": histories["kernel_total"],
            "kernel_speedup": float(np.median(dense.seconds) / np.median(kernel.seconds)),
            "kernel_end_to_end_speedup": histories["dense_total"] / histories["kernel_total"],
            "kernel_max_relative_loss_difference": float(np.max(np.abs(kernel.loss - dense.loss) / dense.loss)),
            "sparse_seconds_per_step": float(np.median(sparse.seconds)),
            "speedup": float(np.median(dense.seconds) / np.median(sparse.seconds)),
            "dense_total": histories["dense_total"], "sparse_total": histories["sparse_total"],
            "end_to_end_speedup": histories["dense_total"] / histories["sparse_total"],
            "max_relative_loss_difference": float(np.max(np.abs(sparse.loss - dense.loss) / dense.loss)),
            "active_fraction": float(sparse.active_mean[0] / cfg["width"]),
            "candidates_per_active": float(np.mean(sparse.stats["candidates"] / sparse.stats["active_pairs"]))}


# ------------------------------------------------------------------------------------------------ claims
def _spread(values: list[float], fmt: str) -> str:
    """One value as is; several as their mean and (min–max)."""
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(float(np.mean(values)), fmt)} ({format(min(values), fmt)}–{format(max(values), fmt)})"


def claims(results: dict) -> list[dict[str, str]]:
    """The paper's claims with the measured numbers and a plain verdict."""
    rows = []

    def add(claim: str, source: str, measured: str, verdict: str) -> None:
        rows.append({"claim": claim, "source": source, "measured": measured, "verdict": verdict})

    sp = results.get("sparsity")
    if sp:
        per = sorted(sp["per_bias"].items(), key=lambda item: float(item[0]))
        seeds = len(sp["config"]["seeds"])
        over = f" (mean over {seeds} seeds, range in parentheses)" if seeds > 1 else ""

        def listing(key: str, fmt: str) -> str:
            return ", ".join(f"B={float(bias):g}: {_spread(row[key], fmt)}" for bias, row in per)

        hidden = [float(np.mean(row["hidden_change"])) for _, row in per if "hidden_change" in row]
        if len(hidden) == len(per):  # more than one layer
            add("each hidden layer's sparsity stays nearly constant during training (within a few percent)",
                "P1 Fig. 1", "largest change of a hidden layer's active fraction" + over + ": "
                + listing("hidden_change", ".3f"),
                "reproduced" if max(hidden) <= 0.05 else (
                    "partly reproduced" if max(hidden) <= 0.10 else "not reproduced"))
        means = [float(np.mean(row["final_active"])) for _, row in per]
        add("a larger bias gives a sparser network", "P1 Fig. 1",
            "mean final active fraction" + over + ": " + listing("final_active", ".3f"),
            "reproduced" if all(a > b for a, b in itertools.pairwise(means)) else "not reproduced")
        acc = [float(np.mean(row["accuracy"])) for _, row in per]
        drop = max(acc) - min(acc)
        add("... with only a marginal accuracy drop", "P1 Fig. 1",
            "final test accuracy" + over + ": " + listing("accuracy", ".4f")
            + f" (drop {drop:.4f}; {sp['config']['epochs']} epoch(s) on {sp['config']['train_size']} images)",
            "reproduced" if drop <= 0.02 else "not reproduced at this training budget")
        if len(hidden) == len(per):
            first = [float(np.mean(row["input_change"])) for _, row in per]
            add("the input layer (layer 0) behaves differently from the others", "P1 Fig. 1",
                "layer 0 change vs largest hidden change" + over + ": " + ", ".join(
                    f"B={float(bias):g}: {_spread(row['input_change'], '.3f')} vs "
                    f"{_spread(row['hidden_change'], '.3f')}" for bias, row in per),
                "reproduced" if all(a > b for a, b in zip(first, hidden, strict=True)) else "not reproduced")
    cv = results.get("convergence")
    if cv:
        add("networks with different biases converge with the same final slope (η ∝ λ(B)e^{B²})", "P1 Fig. 2",
            cv["verdict"], "reproduced" if cv["same_slope"] else "not reproduced")
        if cv.get("width_axis"):
            add("the slope gap between biases at small width is a finite-width effect (closes as the width grows)",
                "P1 Fig. 2, Theorem 3.1", cv["width_axis"]["verdict"],
                "holds" if cv["width_axis"]["gap_closes"] else "not shown")
    kn = results.get("kernel")
    if kn:
        ratio = np.array(kn["fit_ratio"])
        add("λ_min(H∞) decays like λ₀·e^{−B²/2} (λ₀ independent of B)", "P1 assumption",
            f"λ₀ = {kn['lambda0']:.4g}; λ(B)/(λ₀e^{{−B²/2}}) ranges over [{ratio.min():.3g}, {ratio.max():.3g}] "
            f"for B in [{kn['biases'][0]:g}, {kn['biases'][-1]:g}]",
            "reproduced" if ratio.max() / ratio.min() <= 3 else "partly reproduced (a B-dependent factor remains)")
        add("the empirical NTK of a wide network approaches H∞ at rate 1/√m", "P1 §3, NTK theory",
            f"mean |H − H∞| vs width slope {kn['ntk_slope']:.3f} (theory −0.5)",
            "reproduced" if abs(kn["ntk_slope"] + 0.5) <= 0.15 else "not reproduced")
    au = results.get("audit")
    if au:
        for row in au["rows"]:
            if row["kind"] in ("upper bound", "lower bound") and row["holds"] is not None:
                add(row["claim"], row["source"],
                    f"measured {row['measured']:.4g} vs {row['theory']:.4g} ({row['constant'] or 'exact'})",
                    "holds" if row["holds"] else "violated")
    tm = results.get("timing")
    if tm:
        add("exact sparse GD gives the dense iterates at a cost that follows the active pairs", "sparsentk, P1 §1",
            f"max relative loss difference {tm['max_relative_loss_difference']:.2g}; {tm['speedup']:.1f}× faster per "
            f"step at width {tm['width']}, B = {tm['bias']:g} (active fraction {tm['active_fraction']:.4f})",
            "holds" if tm["max_relative_loss_difference"] < 1e-3 else "violated")
    rows += deep_parts.claims(results)
    rows += p3_parts.claims(results)
    return rows


# ------------------------------------------------------------------------------------------------ rendering
def _table_md(header: list[str], rows: list[list[str]]) -> str:
    esc = [[str(c).replace("|", "\\|") for c in row] for row in rows]
    header = [str(h).replace("|", "\\|") for h in header]
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(r) + " |" for r in esc])


#: Tables longer than this fold away in report.html (and in Markdown viewers that honour <details>).
FOLD_ROWS = 15
_SUP = re.compile(r"\^\{([^{}]*)\}")
_SUB = re.compile(r"_\{([^{}]*)\}")
_SUP_TOKEN = re.compile(r"\^([A-Za-z0-9]+)")
_SUB_GREEK = re.compile(r"([λκθφρσχβτΘ])_([A-Za-z0-9]+)")


def math_html(text: str) -> str:
    """Escape ``text`` for HTML and typeset its formulas: ``e^{−B²/2}`` → e<sup>−B²/2</sup>, ``λ_{max}`` and
    ``λ_max`` → λ<sub>max</sub>, ``χ₁^L`` → χ₁<sup>L</sup> (the claims are written in Unicode with TeX-like
    braces)."""
    out = html.escape(str(text))
    out = _SUP.sub(r"<sup>\1</sup>", out)
    out = _SUB.sub(r"<sub>\1</sub>", out)
    out = _SUP_TOKEN.sub(r"<sup>\1</sup>", out)
    return _SUB_GREEK.sub(r"\1<sub>\2</sub>", out)


def math_md(text: str) -> str:
    """Plain-text formulas for Markdown: ``e^{−B²/2}`` → ``e^(−B²/2)``, ``e^{x}`` → ``e^x``, ``λ_{max}`` →
    ``λ_max`` (braces are never shown)."""
    def sup(m: re.Match) -> str:
        return "^" + (m.group(1) if len(m.group(1)) == 1 else f"({m.group(1)})")

    def sub(m: re.Match) -> str:
        return "_" + (m.group(1) if m.group(1).isalnum() else f"({m.group(1)})")

    return _SUB.sub(sub, _SUP.sub(sup, str(text)))


def render(blocks: list[tuple], out: Path) -> tuple[str, str]:
    """Markdown and self-contained HTML (figures embedded) from one list of blocks.

    Blocks: ``("h1"|"h2", text)``, ``("p", text)``, ``("table", header, rows[, caption])``, ``("img", file,
    caption)``, ``("details", summary, [blocks])`` (folded). Tables of more than ``FOLD_ROWS`` rows fold too.
    Formulas in the text are typeset (:func:`math_html`, :func:`math_md`).
    """
    md, body = [], []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            md.append(("# " if kind == "h1" else "## ") + math_md(block[1]))
            body.append(f"<{kind}>{math_html(block[1])}</{kind}>")
        elif kind == "p":
            md.append(math_md(block[1]))
            body.append(f"<p>{math_html(block[1])}</p>")
        elif kind == "table":
            caption = block[3] if len(block) > 3 else None
            text = _table_md([math_md(h) for h in block[1]], [[math_md(c) for c in r] for r in block[2]])
            if caption:
                text = f"*{math_md(caption)}*\n\n{text}"
            head = "".join(f"<th>{math_html(h)}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td class='{_css(c)}'>{math_html(c)}</td>" for c in r) + "</tr>"
                           for r in block[2])
            cap = f"<caption>{math_html(caption)}</caption>" if caption else ""
            table = f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
            if len(block[2]) > FOLD_ROWS:
                summary = f"{caption or 'table'} ({len(block[2])} rows)"
                md.append(f"<details><summary>{html.escape(math_md(summary))}</summary>\n\n{text}\n\n</details>")
                body.append(f"<details><summary>{math_html(summary)}</summary>{table}</details>")
            else:
                md.append(text)
                body.append(table)
        elif kind == "details":
            inner_md, inner_html = render(block[2], out)
            start, stop = inner_html.index("<body>") + 6, inner_html.rindex("</body>")
            inner_html = inner_html[start:stop].replace("<details>", "").replace("</details>", "")
            inner_html = re.sub(r"<summary>.*?</summary>", "", inner_html)
            md.append(f"<details><summary>{html.escape(math_md(block[1]))}</summary>\n\n"
                      f"{re.sub(r'</?details>|<summary>.*?</summary>', '', inner_md).strip()}\n\n</details>")
            body.append(f"<details><summary>{math_html(block[1])}</summary>{inner_html}</details>")
        elif kind == "img":
            md.append(f"![{math_md(block[2])}]({block[1]})")
            data = base64.b64encode((out / block[1]).read_bytes()).decode("ascii")
            body.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(math_md(block[2]))}'>"
                        f"<figcaption>{math_html(block[2])}</figcaption></figure>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:4px 8px;"
             "vertical-align:top}th{background:#f3f3f3}img{max-width:100%}.good{background:#e8f6e8}"
             ".bad{background:#fbe9e9}.mid{background:#fff6dd}figcaption{color:#555;font-size:0.9em}"
             "caption{caption-side:top;text-align:left;color:#555;font-size:0.9em;padding:2px 0}"
             "details{margin:1em 0}summary{cursor:pointer;color:#245}sup,sub{font-size:0.75em;line-height:0}")
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>sparsentk report</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
    return "\n\n".join(md) + "\n", page


def _css(cell: Any) -> str:
    text = str(cell)
    if text in ("holds", "yes") or text.startswith(("reproduced", "consistent")):
        return "good"
    if text.startswith(("not reproduced", "not consistent")) or text in ("violated", "**no**"):
        return "bad"
    if text.startswith(("partly", "not comparable", "not observed")):
        return "mid"
    return ""


# ------------------------------------------------------------------------------------------------ driver
def reproduce_report(
    out: str | Path,
    *,
    quick: bool = True,
    data: str = "auto",
    data_dir: str | None = None,
    seed: int = 0,
    resume: bool = False,
    parts: tuple[str, ...] = PARTS,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the study into ``out``: ``report.md``, ``report.html``, ``results.json``, PNG figures, ``parts/``.

    ``resume`` reuses every part whose saved configuration matches; same seed, same numbers.
    """
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"parts: expected names among {PARTS}, got {sorted(unknown)}")
    out = Path(out)
    (out / "parts").mkdir(parents=True, exist_ok=True)
    say = progress or (lambda message: None)
    config = settings(quick, seed, data, data_dir)
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    runners = {"convergence": run_convergence, "sparsity": run_sparsity, "kernel": run_kernel,
               "audit": lambda cfg, s: run_audit(cfg, s, out), "timing": run_timing, **deep_parts.RUNNERS,
               **p3_parts.RUNNERS}
    for name in parts:
        path = out / "parts" / f"{name}.json"
        if resume and path.exists():
            try:
                saved = json.loads(path.read_text())
            except (OSError, ValueError):  # a part file cut short or corrupted: run the part again
                saved = {}
            if isinstance(saved, dict) and saved.get("config") == config[name] and "result" in saved:
                results[name], timings[name] = saved["result"], saved["seconds"]
                say(f"{name}: reused from {path}")
                continue
        start = time.perf_counter()
        results[name] = runners[name](config[name], say)
        timings[name] = time.perf_counter() - start
        atomic_write_json(path, {"config": config[name], "result": results[name], "seconds": timings[name]})
        results[name] = json.loads(path.read_text())["result"]  # what a resumed run would see
        say(f"{name}: finished in {timings[name]:.1f} s")
    figures = _figures(results, out)
    table = claims(results)
    blocks = _blocks(results, table, figures, config, quick, timings)
    md, page = render(blocks, out)
    atomic_write_text(out / "report.md", md)
    atomic_write_text(out / "report.html", page)
    summary = {"config": config, "quick": quick, "seed": seed, "seconds": timings, "claims": table,
               "results": results, "machine": machine_info(),
               "created": datetime.now(UTC).isoformat(timespec="seconds")}
    atomic_write_json(out / "results.json", summary)
    return summary


def _figures(results: dict, out: Path) -> dict[str, str]:
    figures = {}
    if "convergence" in results:
        plotting.save(plotting.convergence_curves(results["convergence"]), out / "convergence.png")
        figures["convergence"] = "convergence.png"
    if "sparsity" in results:
        plotting.save(plotting.layer_sparsity(results["sparsity"]), out / "sparsity.png")
        figures["sparsity"] = "sparsity.png"
    if "kernel" in results:
        k = results["kernel"]
        plotting.save(plotting.spectrum_vs_bias(k["biases"], k["lambda_min"], k["condition_number"], k["lambda0"]),
                      out / "kernel_spectrum.png")
        figures["kernel"] = "kernel_spectrum.png"
    if "audit" in results and (out / "audit" / "audit.png").exists():
        figures["audit"] = "audit/audit.png"
    if "timing" in results:
        plotting.save(plotting.speedup_bars(results["timing"]), out / "timing.png")
        figures["timing"] = "timing.png"
    figures.update(deep_parts.figures(results, out))
    figures.update(p3_parts.figures(results, out))
    return figures


def _blocks(results: dict, table: list[dict], figures: dict, config: dict, quick: bool, timings: dict) -> list:
    info = machine_info()
    blocks: list[tuple] = [
        ("h1", "sparsentk: sparse activation induced by large bias — reproduction report"),
        ("p", f"Yang et al., arXiv 2301.00327 (P1). Mode: {'quick' if quick else 'full'}; "
              f"seed {config['audit']['seed']}; "
              f"sparsentk {snt.__version__}, Python {info['python']}, {info['cpu_count']} CPUs ({info['platform']}). "
              "Bounds marked 'up to constants' were reconstructed from the paper's prose; their constants are ours."),
        ("h2", "Claims"),
        ("table", ["claim", "source", "measured", "verdict"],
         [[r["claim"], r["source"], r["measured"], r["verdict"]] for r in table]),
    ]
    if "sparsity" in results:
        sp = results["sparsity"]
        c = sp["config"]
        blocks += [("h2", "Sparsity persists in a deep MLP (P1 Figure 1)"),
                   ("p", f"{c['depth']} hidden layers of width {c['width']}, biases initialized to −B, Kaiming-normal "
                         f"weights, BatchNorm after each ReLU, SGD lr {c['lr']:g} (momentum {c['momentum']:g}, batch "
                         f"{c['batch_size']}), {c['epochs']} epoch(s) on {c['train_size']} images of {c['data']} "
                         f"({c['source']}); test on {c['test_size']}. Seeds (initialization and batch order): "
                         f"{', '.join(map(str, c['seeds']))}."),
                   ("img", figures["sparsity"], "active fraction of every layer per SGD batch"),
                   ("table", ["B", "seed", "layer", "initial", "final", "largest change"],
                    [[f"{r['bias']:g}", str(r["seed"]), str(lay["layer"]), f"{lay['initial']:.4f}",
                      f"{lay['final']:.4f}", f"{lay['max_change']:.4f}"] for r in sp["runs"] for lay in r["layers"]])]
    if "convergence" in results:
        cv = results["convergence"]
        blocks += [("h2", "Same convergence rate for every bias (P1 Figure 2)"),
                   ("p", f"Unit inputs on the sphere, labels relu(w*·x) of a fixed unit teacher, width "
                         f"{cv['config']['width']}, n = {cv['config']['n']}, d = {cv['config']['dim']}, "
                         f"{cv['config']['steps']} full-batch GD steps, learning rate rule "
                         f"'{cv['config']['lr_rule']}' (η ∝ λ(B)e^{{B²}}, B = 0 at 1/λ_max). {cv['verdict']}."),
                   ("img", figures["convergence"],
                    "log training loss against the GD step (median and range over seeds)"),
                   ("table", ["B", "η·λ(B)", "final slope (mean ± std)"],
                    [[b, f"{v['eta_lambda_mean']:.4g}", f"{v['slope_mean']:.4g} ± {v['slope_std']:.2g}"]
                     for b, v in cv["per_bias"].items()])]
        axis = cv.get("width_axis")
        if axis:
            biases = list(axis["per_width"][0]["slope"])
            blocks += [("h2", "The convergence gap against the width"),
                       ("p", "The same problems and step sizes at every width (exact GD; function-space method from "
                             f"width {cv['config']['kernel_from']}); each final slope of log L beside −2ηλ_min of "
                             f"its own empirical NTK at initialization (mean over seeds). {axis['verdict']}."),
                       ("table", ["width", *(f"slope B={b} (vs −2ηλ_min)" for b in biases), "slope ratio"],
                        [[str(row["width"]),
                          *(f"{row['slope'][b]:.4g} (vs {-row['two_eta_lambda'][b]:.4g})" for b in biases),
                          f"{row['gap_ratio']:.3g}"] for row in axis["per_width"]])]
    if "kernel" in results:
        k = results["kernel"]
        blocks += [("h2", "The bias-generalized NTK against the bias"),
                   ("p", f"λ_min and condition number of H∞ on {config['kernel']['n']} unit inputs in "
                         f"d = {config['kernel']['dim']}; fitted λ₀ = {k['lambda0']:.4g}. Empirical NTK error vs "
                         f"width at B = {config['kernel']['ntk_bias']:g}: "
                         + ", ".join(f"m={w}: {e:.4g}" for w, e in zip(k["ntk_widths"], k["ntk_errors"], strict=True))
                         + f" (slope {k['ntk_slope']:.3f}; theory −0.5)."),
                   ("img", figures["kernel"], "λ_min(H∞) and condition number against the bias")]
    if "audit" in results:
        rows = results["audit"]["rows"]
        blocks += [("h2", "Audit of P1's bounds on one training run"),
                   ("img", figures["audit"], "loss, active neurons, flips and movement with the bounds"),
                   ("table", ["claim", "source", "measured", "theory", "kind", "ratio", "note"],
                    [[r["claim"], r["source"], _num(r["measured"]), _num(r["theory"]), r["kind"], _num(r["ratio"]),
                      "; ".join(x for x in (r["constant"], r["note"]) if x)] for r in rows])]
    if "timing" in results:
        t = results["timing"]
        blocks += [("h2", "Exact sparse and function-space GD against dense GD"),
                   ("p", f"n = {t['n']}, d = {t['dim']}, width {t['width']}, B = {t['bias']:g}, float32, "
                         f"lr {t['lr']:g}, "
                         f"{t['steps']} steps each, same initialization, measured side by side: dense "
                         f"{t['dense_seconds_per_step'] * 1e3:.1f} ms/step, sparse "
                         f"{t['sparse_seconds_per_step'] * 1e3:.1f} ms/step ({t['speedup']:.1f}×; end to end including "
                         f"set-up {t['end_to_end_speedup']:.1f}×); largest relative loss difference "
                         f"{t['max_relative_loss_difference']:.2g}; candidates per active pair "
                         f"{t['candidates_per_active']:.2f}. See BENCHMARKS.md for the full-size benchmark.")]
        if "kernel_seconds_per_step" in t:
            blocks += [("table", ["method", "ms per step", "speed-up per step", "end to end (s)",
                                  "end-to-end speed-up", "largest relative loss difference to dense"],
                        [["dense", f"{t['dense_seconds_per_step'] * 1e3:.1f}", "1", f"{t['dense_total']:.2f}", "1",
                          "0"],
                         ["sparse", f"{t['sparse_seconds_per_step'] * 1e3:.1f}", f"{t['speedup']:.1f}",
                          f"{t['sparse_total']:.2f}", f"{t['end_to_end_speedup']:.1f}",
                          f"{t['max_relative_loss_difference']:.2g}"],
                         ["kernel (function space)", f"{t['kernel_seconds_per_step'] * 1e3:.1f}",
                          f"{t['kernel_speedup']:.1f}", f"{t['kernel_total']:.2f}",
                          f"{t['kernel_end_to_end_speedup']:.1f}",
                          f"{t['kernel_max_relative_loss_difference']:.2g}"]])]
        blocks += [("img", figures["timing"], "median seconds per GD step")]
    blocks += deep_parts.blocks(results, figures)
    blocks += p3_parts.blocks(results, figures)
    blocks.append(("p", "Run times per part (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()) + "."))
    return blocks


def _num(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return f"{x:.4g}" if isinstance(x, int | float) else str(x)
