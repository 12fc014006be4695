"""``sparsentk audit`` and ``sparsentk sweep``: P1's claims against measurement."""

from __future__ import annotations

import click
import numpy as np

import sparsentk as snt
from sparsentk import plotting
from sparsentk._grid import make_executor
from sparsentk._io import atomic_write_json, atomic_write_text, machine_info
from sparsentk.cli._common import data_options, echo_done, load_data, number_list, output_dir


def _split(X: np.ndarray, y: np.ndarray, test_fraction: float, seed: int):
    if not 0 <= test_fraction < 1:
        raise ValueError(f"--test-fraction: expected a number in [0, 1), got {test_fraction}")
    if test_fraction == 0:
        return X, y, None, None
    order = np.random.default_rng(seed).permutation(len(y))
    cut = len(y) - max(1, round(test_fraction * len(y)))
    return X[order[:cut]], y[order[:cut]], X[order[cut:]], y[order[cut:]]


@click.command("audit")
@data_options(n=200, dim=16)
@click.option("--width", type=int, default=4096, show_default=True, help="Hidden width m.")
@click.option("--bias", type=float, default=1.5, show_default=True, help="Initial bias B.")
@click.option("--lr", type=float, default=None, help="Step size (default 1/λ_max of the empirical NTK at init).")
@click.option("--steps", type=int, default=200, show_default=True)
@click.option("--init", type=click.Choice(["standard", "symmetric"]), default="standard", show_default=True)
@click.option("--method", type=click.Choice(["auto", "dense", "sparse"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              help="Fraction held out for the generalization row (0: none).")
@click.option("--out", type=click.Path(file_okay=False), default="runs/audit", show_default=True)
def audit_command(data, n, dim, teacher, noise, width, bias, lr, steps, init, method, seed, test_fraction, out):
    """Train, then set each of P1's claims beside its measured value (bounds up to constants).

    Writes audit.json, audit.md, history.csv and audit.png.
    """
    X, y = load_data(data, n, dim, teacher, noise, seed)
    X, y, X_test, y_test = _split(X, y, test_fraction, seed)
    result = snt.audit(X, y, width=width, bias=bias, lr=lr, steps=steps, seed=seed, init=init, method=method,
                       X_test=X_test, y_test=y_test, progress=True)
    out_dir = output_dir(out)
    echo_done(out_dir, result.write(out_dir))
    click.echo(result.to_markdown())


@click.command("sweep")
@data_options(n=100, dim=16)
@click.option("--biases", default="0,1,2,3", show_default=True, help="Comma-separated biases.")
@click.option("--widths", default="512,2048,8192", show_default=True, help="Comma-separated widths.")
@click.option("--lr", type=float, default=None, help="Step size (default 1/λ_max of each network's NTK at init).")
@click.option("--steps", type=int, default=100, show_default=True)
@click.option("--method", type=click.Choice(["auto", "dense", "sparse"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes running (bias, width) pairs side by side (the cores are shared among them).")
@click.option("--scheduler", default=None, help="Address of a dask.distributed scheduler that runs the pairs.")
@click.option("--out", type=click.Path(file_okay=False), default="runs/sweep", show_default=True,
              help="Output folder; each pair's result is kept in OUT/runs/, so a rerun resumes where it stopped.")
def sweep_command(data, n, dim, teacher, noise, biases, widths, lr, steps, method, seed, workers, scheduler, out):
    """Audit every (bias, width) pair; table and plots of measured values against B and m with fitted slopes."""
    X, y = load_data(data, n, dim, teacher, noise, seed)
    out_dir = output_dir(out)
    result = snt.sweep(X, y, biases=number_list(biases, "--biases"), widths=number_list(widths, "--widths", int),
                       steps=steps, lr=lr, seed=seed, method=method, progress=True, out=out_dir / "runs",
                       workers=workers, executor=make_executor(scheduler=scheduler) if scheduler else None)
    atomic_write_json(out_dir / "sweep.json", result | {"machine": machine_info()})
    keys = list(result["rows"][0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |"
              for r in result["rows"]]
    text = "# sparsentk sweep (bounds up to constants)\n\n" + "\n".join(lines) + "\n\n## fitted slopes\n\n"
    text += "\n".join(f"- {k}: {v}" for k, v in result["slopes"].items()) + "\n"
    text += ("\nTheory: log active fraction vs B²/2 has slope about −1 (e^{−B²/2}, up to a polynomial factor); "
             "log R vs log m has slope −1/2 (Lemma A.8).\n")
    atomic_write_text(out_dir / "sweep.md", text)
    plotting.save(plotting.sweep_panels(result), out_dir / "sweep.png")
    echo_done(out_dir, ["sweep.json", "sweep.md", "sweep.png"])
    click.echo(text)
