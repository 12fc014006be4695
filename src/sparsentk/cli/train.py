"""``sparsentk train``: train a ShallowReLU with full-batch GD and write its history, parameters and plots."""

from __future__ import annotations

import time

import click

from sparsentk.cli._common import (
    COUNT,
    POSITIVE,
    SEED,
    STEPS,
    Number,
    data_options,
    echo_done,
    fresh_outputs,
    load_data,
    output_dir,
)
from sparsentk.training import METHODS

FILES = ["history.csv", "params.npz", "summary.json", "loss.png", "sparsity.png"]


@click.command("train")
@data_options(n=256, dim=16)
@click.option("--width", type=COUNT, default=4096, show_default=True, help="Hidden width m.")
@click.option("--bias", type=Number(float, minimum=0.0), default=2.0, show_default=True,
              help="Initial bias B (activation threshold).")
@click.option("--init", type=click.Choice(["standard", "symmetric"]), default="standard", show_default=True,
              help="standard: w ~ N(0, I), a = ±1; symmetric: mirrored neurons so that f ≡ 0 at init (even width).")
@click.option("--lr", type=POSITIVE, default=None, show_default="1/λ_max of the empirical NTK at init",
              help="Step size η (the default is half the largest step the linearized dynamics allow).")
@click.option("--steps", type=STEPS, default=200, show_default=True, help="Number of GD steps.")
@click.option("--method", type=click.Choice(list(METHODS)), default="auto", show_default=True,
              help="Training method: every one gives the same iterates up to rounding; auto picks the fastest.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float64", show_default=True,
              help="Float type of the network's parameters and of GD.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the data and the network.")
@click.option("--out", type=click.Path(), default="runs/train", show_default=True,
              help="Output folder (a rerun replaces the files of the previous run there).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
@click.option("--distributed", is_flag=True, help="Split the neurons among the MPI ranks: run as `mpiexec -n K "
              "sparsentk train ... --distributed` (extra mpi; README, 'Scaling out'). Rank 0 writes the files.")
@click.option("--checkpoint-every", type=STEPS, default=0, show_default=True,
              help="With --distributed: checkpoint every K steps and after the last to OUT/checkpoints (0: none).")
@click.option("--resume", is_flag=True, help="With --distributed: continue from the newest committed checkpoint in "
              "OUT/checkpoints (at any rank count).")
@click.option("--timeout", type=POSITIVE, default=None,
              help="With --distributed: end the job when a step takes longer than this many seconds (a hung rank).")
def train_command(data, n, dim, teacher, noise, width, bias, init, lr, steps, method, dtype, seed, out, progress,
                  distributed, checkpoint_every, resume, timeout):
    """Train a one-hidden-layer ReLU network with large bias by full-batch GD (P1, paper-notes §1).

    Writes history.csv, params.npz, summary.json, loss.png and sparsity.png to --out. Ctrl-C stops after the
    step under way and still writes every file, for the steps finished ("interrupted": true in summary.json).
    """
    import numpy as np

    import sparsentk as snt
    from sparsentk import plotting
    from sparsentk._io import atomic_write_json, machine_info
    from sparsentk._memory import require_memory

    out_dir = output_dir(out)
    X, y = load_data(data, n, dim, teacher, noise, seed)
    if not distributed and (checkpoint_every or resume or timeout):
        raise ValueError("--checkpoint-every, --resume, --timeout: need --distributed")
    if distributed:  # each rank draws and trains its own neurons (sparsentk.distributed.mpi)
        from sparsentk.distributed import NetworkSpec, empirical_ntk_sharded, train_sharded

        spec = NetworkSpec(X.shape[1], width, bias, init=init, seed=seed, dtype=np.dtype(dtype))
        if lr is None:
            lr = snt.theory.linearized_lr(empirical_ntk_sharded(spec, X))
    else:
        itemsize = np.dtype(dtype).itemsize
        require_memory(4.0 * width * (X.shape[1] + 3) * itemsize, "--width", f"a network of width {width}")
        net = snt.ShallowReLU(X.shape[1], width, bias, init=init, seed=seed, dtype=np.dtype(dtype))
        if lr is None:
            lr = snt.theory.linearized_lr(snt.empirical_ntk(net, X))
    start = time.perf_counter()
    diverged, interrupted, sharded = None, False, None
    try:
        if distributed:
            sharded = train_sharded(spec, X, y, lr=lr, steps=steps, method=method, progress=progress,
                                    checkpoint=out_dir / "checkpoints" if checkpoint_every or resume else None,
                                    checkpoint_every=checkpoint_every, resume=resume, timeout=timeout)
            history = sharded.history
        else:
            history = snt.train(net, X, y, lr=lr, steps=steps, method=method, progress=progress)
    except snt.TrainingDiverged as err:
        history, diverged, sharded = err.history, str(err), getattr(err, "result", None)
    except snt.TrainingInterrupted as err:
        history, interrupted, sharded = err.history, True, getattr(err, "result", None)
    if distributed:
        net = sharded.gather(root=0)  # the whole network on rank 0, which writes the files
        if net is None:
            return
    total = time.perf_counter() - start
    expected = float(snt.training.expected_active_fraction(net.bias, X))
    summary = {
        "config": {
            "data": data, "n": int(X.shape[0]), "dim": int(X.shape[1]), "teacher": teacher, "noise": noise,
            "width": width, "bias": bias, "init": init, "lr": lr, "steps": steps, "method": history.method,
            "dtype": dtype, "seed": seed,
        },
        "steps_done": history.steps,
        "interrupted": interrupted,
        "diverged": diverged,
        "final_loss": float(history.loss[-1]),
        "initial_loss": float(history.loss[0]),
        "active_fraction_initial": float(history.active_mean[0] / width),
        "active_fraction_final": float(history.active_mean[-1] / width),
        "active_fraction_expected": expected,
        "flips_final": int(history.flips[-1]),
        "flip_fraction_final": float(history.flips[-1] / (X.shape[0] * width)),
        "movement_w_final": float(history.movement_w[-1]),
        "movement_b_final": float(history.movement_b[-1]),
        "seconds_total": total,
        "seconds_setup": history.setup_seconds,
        "seconds_per_step_median": float(np.median(history.seconds)) if history.steps else None,
        "machine": machine_info(),
    }
    title = (f"m = {width}, B = {bias:g}, n = {X.shape[0]}, d = {X.shape[1]}: {history.method} GD, "
             f"η = {lr:.3g}{' (interrupted)' if interrupted else ''}")
    with fresh_outputs(out_dir, FILES) as stage:
        history.to_csv(stage / "history.csv")
        net.save(stage / "params.npz")
        atomic_write_json(stage / "summary.json", summary)
        plotting.save(plotting.loss_curve(history, title=title), stage / "loss.png")
        plotting.save(plotting.sparsity_curve(history, width, expected=expected, n=X.shape[0], title=title),
                      stage / "sparsity.png")
    echo_done(out_dir, FILES)
    click.echo(
        f"loss {history.loss[0]:.4g} -> {history.loss[-1]:.4g} in {history.steps} steps ({history.method}); "
        f"active fraction {summary['active_fraction_initial']:.4f} -> {summary['active_fraction_final']:.4f} "
        f"(expected {expected:.4f})"
    )
    if diverged:
        raise click.ClickException(diverged)
    if interrupted:
        click.echo(f"sparsentk: interrupted after step {history.steps} of {steps}; the files hold every finished "
                   "step", err=True)
        raise click.exceptions.Exit(130)
