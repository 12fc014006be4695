"""``sparsentk train``: train a ShallowReLU with full-batch GD and write its history, parameters and plots."""

from __future__ import annotations

import time

import click
import numpy as np

import sparsentk as snt
from sparsentk import plotting
from sparsentk._io import atomic_write_json, machine_info
from sparsentk.cli._common import data_options, echo_done, load_data, output_dir


@click.command("train")
@data_options(n=256, dim=16)
@click.option("--width", type=int, default=4096, show_default=True, help="Hidden width m.")
@click.option("--bias", type=float, default=2.0, show_default=True, help="Initial bias B (activation threshold).")
@click.option("--init", type=click.Choice(["standard", "symmetric"]), default="standard", show_default=True)
@click.option("--lr", type=float, default=None, help="Step size η. Default: 1 / λ_max of the empirical NTK at init "
              "(half the largest step the linearized dynamics allow).")
@click.option("--steps", type=int, default=200, show_default=True, help="Number of GD steps.")
@click.option("--method", type=click.Choice(list(snt.training.METHODS)), default="auto", show_default=True,
              help="dense reference, exact sparse GD, or auto (sparse when the active fraction is small).")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float64", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the data and the network.")
@click.option("--out", type=click.Path(file_okay=False), default="runs/train", show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def train_command(data, n, dim, teacher, noise, width, bias, init, lr, steps, method, dtype, seed, out, progress):
    """Train a one-hidden-layer ReLU network with large bias by full-batch GD (P1, paper-notes §1).

    Writes history.csv, params.npz, summary.json, loss.png and sparsity.png to --out.
    """
    X, y = load_data(data, n, dim, teacher, noise, seed)
    net = snt.ShallowReLU(X.shape[1], width, bias, init=init, seed=seed, dtype=np.dtype(dtype))
    if lr is None:
        lr = snt.theory.linearized_lr(snt.empirical_ntk(net, X))
    out_dir = output_dir(out)
    start = time.perf_counter()
    try:
        history = snt.train(net, X, y, lr=lr, steps=steps, method=method, progress=progress)
        diverged = None
    except snt.TrainingDiverged as err:
        history, diverged = err.history, str(err)
    total = time.perf_counter() - start
    history.to_csv(out_dir / "history.csv")
    net.save(out_dir / "params.npz")
    expected = float(snt.training.expected_active_fraction(net.bias, X))
    summary = {
        "config": {
            "data": data, "n": int(X.shape[0]), "dim": int(X.shape[1]), "teacher": teacher, "noise": noise,
            "width": width, "bias": bias, "init": init, "lr": lr, "steps": steps, "method": history.method,
            "dtype": dtype, "seed": seed,
        },
        "diverged": diverged,
        "final_loss": float(history.loss[-1]),
        "initial_loss": float(history.loss[0]),
        "active_fraction_initial": float(history.active_mean[0] / width),
        "active_fraction_final": float(history.active_mean[-1] / width),
        "active_fraction_expected": expected,
        "flips_final": int(history.flips[-1]),
        "movement_w_final": float(history.movement_w[-1]),
        "movement_b_final": float(history.movement_b[-1]),
        "seconds_total": total,
        "seconds_setup": history.setup_seconds,
        "seconds_per_step_median": float(np.median(history.seconds)) if history.steps else None,
        "machine": machine_info(),
    }
    atomic_write_json(out_dir / "summary.json", summary)
    plotting.save(plotting.loss_curve(history), out_dir / "loss.png")
    plotting.save(plotting.sparsity_curve(history, width, expected=expected), out_dir / "sparsity.png")
    echo_done(out_dir, ["history.csv", "params.npz", "summary.json", "loss.png", "sparsity.png"])
    click.echo(
        f"loss {history.loss[0]:.4g} -> {history.loss[-1]:.4g} in {history.steps} steps ({history.method}); "
        f"active fraction {summary['active_fraction_initial']:.4f} -> {summary['active_fraction_final']:.4f} "
        f"(expected {expected:.4f})"
    )
    if diverged:
        raise click.ClickException(diverged)

