"""``sparsentk audit`` and ``sparsentk sweep``: P1's claims against measurement."""

from __future__ import annotations

import math
from typing import Any

import click

from sparsentk.cli._common import (
    COUNT,
    NONNEG,
    POSITIVE,
    SEED,
    STEPS,
    Number,
    NumberList,
    data_options,
    echo_done,
    grid_executor,
    grid_options,
    load_data,
    output_dir,
)
from sparsentk.training import METHODS

#: How far a fitted slope may lie from the theory's and still "agree" (the theory fixes slopes up to constants
#: and lower-order factors; a finite sweep measures them with this much play).
SLOPE_TOLERANCE = 0.25


def _split(X, y, test_fraction: float, seed: int, flag: str):
    """Hold out ``test_fraction`` of the rows (at least one); refuse a split that leaves fewer than 2 to train."""
    import numpy as np

    held = 0 if test_fraction == 0 else max(1, round(test_fraction * len(y)))
    if len(y) - held < 2:
        raise ValueError(f"{flag}: expected at least 2 training points, got {len(y)} point(s) of which {held} are "
                         "held out by --test-fraction")
    if held == 0:
        return X, y, None, None
    order = np.random.default_rng(seed).permutation(len(y))
    cut = len(y) - held
    return X[order[:cut]], y[order[:cut]], X[order[cut:]], y[order[cut:]]


@click.command("audit")
@data_options(n=200, dim=16)
@click.option("--width", type=COUNT, default=4096, show_default=True, help="Hidden width m.")
@click.option("--bias", type=NONNEG, default=1.5, show_default=True, help="Initial bias B.")
@click.option("--lr", type=POSITIVE, default=None, show_default="1/λ_max of the empirical NTK at init",
              help="Step size η.")
@click.option("--steps", type=STEPS, default=200, show_default=True, help="Number of GD steps.")
@click.option("--init", type=click.Choice(["standard", "symmetric"]), default="standard", show_default=True,
              help="standard, or symmetric (mirrored neurons, f ≡ 0 at init; even width).")
@click.option("--method", type=click.Choice(list(METHODS)), default="auto", show_default=True,
              help="Training method (every one gives the same iterates; auto is the fastest).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the data, split and network.")
@click.option("--test-fraction", type=Number(minimum=0.0, maximum=0.99), default=0.2, show_default=True,
              help="Fraction held out for the generalization row (0: none).")
@click.option("--out", type=click.Path(), default="runs/audit", show_default=True, help="Output folder.")
def audit_command(data, n, dim, teacher, noise, width, bias, lr, steps, init, method, seed, test_fraction, out):
    """Train, then set each of P1's claims beside its measured value (bounds up to constants).

    Writes audit.json, audit.md, history.csv and audit.png.
    """
    import sparsentk as snt

    out_dir = output_dir(out)
    X, y = load_data(data, n, dim, teacher, noise, seed)
    X, y, X_test, y_test = _split(X, y, test_fraction, seed, "--n" if data == "sphere" else "--data")
    result = snt.audit(X, y, width=width, bias=bias, lr=lr, steps=steps, seed=seed, init=init, method=method,
                       X_test=X_test, y_test=y_test, progress=True)
    echo_done(out_dir, result.write(out_dir))
    click.echo(result.to_markdown())


def slope_rows(slopes: dict[str, Any], biases: list[float], tolerance: float = SLOPE_TOLERANCE) -> list[list[str]]:
    """The fitted slopes of a sweep beside the theory's: [quantity, bias, fitted, theory, verdict] rows.

    The active fraction at initialization is Φ̄(B) for unit inputs (P1 §3), whose log against B²/2 has slope −1
    only as B grows; the theory's slope here is that of the exact Φ̄(B) fitted over the same biases.
    """
    import numpy as np

    import sparsentk as snt

    exact = math.nan
    if len(set(biases)) >= 2:
        b = np.array(biases, dtype=float)
        probability = np.array([snt.theory.active_probability(float(v)) for v in b])
        exact = float(np.polyfit(b**2 / 2, np.log(probability), 1)[0])
    theory = {"log_active_fraction_vs_B2_over_2": (exact, "log active fraction vs B²/2",
                                                   "Φ̄(B) over these B; → −1 as B grows"),
              "log_R_w_vs_log_width": (-0.5, "log R_w vs log m", "P1 Lemma A.8"),
              "log_R_b_vs_log_width": (-0.5, "log R_b vs log m", "P1 Lemma A.8")}
    rows = []
    for key, value in slopes.items():
        expected, label, source = theory.get(key, (math.nan, key, ""))
        per_bias = value.items() if isinstance(value, dict) else [("all", value)]
        for bias, slope in per_bias:
            if slope is None or not math.isfinite(slope) or not math.isfinite(expected):
                verdict = "no fit"
            elif abs(slope - expected) <= tolerance:
                verdict = f"agrees (within {tolerance:g})"
            else:
                verdict = f"differs by {slope - expected:+.2f}"
            bias_text = bias if bias == "all" else f"{float(bias):g}"
            rows.append([label, bias_text, "–" if slope is None else f"{slope:.3f}",
                         f"{expected:.3g} ({source})" if math.isfinite(expected) else "–", verdict])
    return rows


@click.command("sweep")
@data_options(n=100, dim=16)
@click.option("--biases", type=NumberList(minimum=0.0), default="0,1,2,3", show_default=True,
              help="Comma-separated biases.")
@click.option("--widths", type=NumberList(int, minimum=1), default="512,2048,8192", show_default=True,
              help="Comma-separated widths.")
@click.option("--lr", type=POSITIVE, default=None, show_default="1/λ_max of each network's NTK at init",
              help="Step size η.")
@click.option("--steps", type=STEPS, default=100, show_default=True, help="GD steps per network.")
@click.option("--method", type=click.Choice(list(METHODS)), default="auto", show_default=True,
              help="Training method (every one gives the same iterates; auto is the fastest).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the data and the networks.")
@grid_options("(bias, width) pairs")
@click.option("--out", type=click.Path(), default="runs/sweep", show_default=True,
              help="Output folder; each pair's result is kept in OUT/runs/, so a rerun resumes where it stopped.")
def sweep_command(data, n, dim, teacher, noise, biases, widths, lr, steps, method, seed, workers, scheduler, out):
    """Audit every (bias, width) pair; table and plots of measured values against B and m with fitted slopes."""
    import sparsentk as snt
    from sparsentk import plotting
    from sparsentk._io import atomic_write_json, atomic_write_text, machine_info

    out_dir = output_dir(out)
    X, y = load_data(data, n, dim, teacher, noise, seed)
    if X.shape[0] < 2:
        raise ValueError(f"{'--n' if data == 'sphere' else '--data'}: expected at least 2 points, got {X.shape[0]}")
    result = snt.sweep(X, y, biases=biases, widths=widths, steps=steps, lr=lr, seed=seed, method=method,
                       progress=True, out=out_dir / "runs", workers=workers,
                       executor=grid_executor(scheduler))
    atomic_write_json(out_dir / "sweep.json", result | {"machine": machine_info()})
    keys = list(result["rows"][0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |"
              for r in result["rows"]]
    c = result["config"]
    text = (f"# sparsentk sweep (bounds up to constants)\n\nn = {c['n']}, d = {c['dim']}, {c['steps']} steps, "
            f"seed {c['seed']}\n\n" + "\n".join(lines) + "\n\n## fitted slopes against the theory\n\n")
    header = ["quantity", "bias B", "fitted slope", "theory", "verdict"]
    table = [header, ["---"] * len(header), *slope_rows(result["slopes"], c["biases"])]
    text += "\n".join("| " + " | ".join(row) + " |" for row in table) + "\n"
    text += (f"\nTheory: log active fraction vs B²/2 has slope about −1 (Φ̄(B) ≈ e^{{−B²/2}}/(B√(2π)): the "
             f"polynomial factor steepens it at small B); log R vs log m has slope −1/2 (Lemma A.8). A fit agrees "
             f"when it lies within {SLOPE_TOLERANCE:g} of the theory's slope.\n")
    atomic_write_text(out_dir / "sweep.md", text)
    plotting.save(plotting.sweep_panels(result), out_dir / "sweep.png")
    echo_done(out_dir, ["sweep.json", "sweep.md", "sweep.png"])
    click.echo(text)
