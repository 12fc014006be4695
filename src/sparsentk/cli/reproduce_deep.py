"""``sparsentk reproduce conditioning`` and ``sparsentk reproduce depth-accuracy``: P2's studies (a thin shell over
:mod:`sparsentk.experiments.conditioning` and :mod:`sparsentk.experiments.depth_accuracy`)."""

from __future__ import annotations

import click

from sparsentk._io import atomic_write_json, machine_info
from sparsentk.cli._common import (
    COUNT,
    SEED,
    Number,
    NumberList,
    check_mnist_dir,
    echo_done,
    grid_executor,
    grid_options,
    output_dir,
)

DATA_HELP = "auto: MNIST when its IDX files are found, else scikit-learn's digits (offline)."
DATA_DIR_HELP = "Folder with the four MNIST IDX files (raw or .gz); default $SPARSENTK_MNIST_DIR or the cache."


def _status(title: str):
    from sparsentk.cli.reproduce import status

    return status(title)


def _print_claims(rows: list[dict]) -> None:
    for row in rows:
        click.echo(f"[{row['verdict']}] {row['claim']}: {row['measured']}")


@click.command("conditioning")
@click.option("--depths", type=NumberList(int, minimum=0), default="0,1,2,3,4,5,6,7,8,9,10", show_default=True,
              help="Hidden-layer counts L of the depth curves (P2: 0…10).")
@click.option("--width", type=COUNT, default=512, show_default=True, help="Width of the finite networks.")
@click.option("--seeds", type=NumberList(int, minimum=0), default="0,1,2,3,4", show_default=True,
              help="Seeds of the finite networks.")
@click.option("--synthetic-n", type=Number(int, minimum=2), default=2000, show_default=True,
              help="Points of P2's synthetic set, N(0, I_dim).")
@click.option("--synthetic-dim", type=Number(int, minimum=2), default=5, show_default=True)
@click.option("--data", type=click.Choice(["mnist", "digits", "auto", "none"]), default="auto", show_default=True,
              help=DATA_HELP + " none: skip the image set.")
@click.option("--data-dir", type=click.Path(), default=None, help=DATA_DIR_HELP)
@click.option("--batches", type=COUNT, default=4, show_default=True, help="Image batches (κ averaged over them).")
@click.option("--batch-size", type=Number(int, minimum=2), default=512, show_default=True)
@click.option("--biases", type=NumberList(minimum=0.0), default="0,0.5,1,2", show_default=True,
              help="Thresholds B of the bias axis.")
@click.option("--bias-n", type=Number(int, minimum=2), default=500, show_default=True,
              help="Unit points of the bias axis.")
@click.option("--train-bias/--fixed-bias", default=False, show_default=True,
              help="Whether the biases are trained on the bias axis.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the data sets.")
@click.option("--threads", type=COUNT, default=None, show_default="left alone",
              help="BLAS and numba threads (1 avoids oversubscribing a busy machine; --workers runs networks in "
                   "parallel processes).")
@grid_options("finite networks")
@click.option("--resume", is_flag=True, help="Keep every finished network's file in OUT/networks and reuse it.")
@click.option("--out", type=click.Path(), default="runs/conditioning", show_default=True, help="Output folder.")
def conditioning_command(depths, width, seeds, synthetic_n, synthetic_dim, data, data_dir, batches, batch_size,
                         biases, bias_n, train_bias, seed, threads, workers, scheduler, resume, out):
    """Gradient angles and NTK conditioning against depth (P2 Figs 1 and 3), the bias axis, the depth limits.

    ReLU and linear networks, all layers trained or the first only, at infinite width and as width-512 networks
    over several seeds; the bias axis B ∈ {0, 0.5, 1, 2} with the predicted reliable depth; the large-depth limits
    (φ → 75.5°, κ → (n+3)/3; with a bias φ → 90°, κ → 1)."""
    from sparsentk import plotting
    from sparsentk.experiments import _figures
    from sparsentk.experiments.conditioning import conditioning_study
    from sparsentk.experiments.conditioning_report import claim_rows

    out_dir = output_dir(out)
    check_mnist_dir(data, data_dir)
    with _status("conditioning study") as say:
        result = conditioning_study(depths=depths, width=width, seeds=seeds, synthetic_n=synthetic_n,
                                    synthetic_dim=synthetic_dim, images=data, data_dir=data_dir,
                                    image_batches=batches, batch_size=batch_size, biases=biases, bias_n=bias_n,
                                    bias_train_bias=train_bias, seed=seed, threads=threads,
                                    out=out_dir / "networks" if resume else None, workers=workers,
                                    executor=grid_executor(scheduler), callback=say)
    atomic_write_json(out_dir / "conditioning.json", result | {"machine": machine_info()})
    files = ["conditioning.json", "conditioning_angles.png", "conditioning_bias.png"]
    plotting.save(_figures.angle_map(result), out_dir / "conditioning_angles.png")
    plotting.save(_figures.bias_axis(result), out_dir / "conditioning_bias.png")
    for name in result["depth"]:
        plotting.save(_figures.depth_curves(result, name), out_dir / f"conditioning_depth_{name}.png")
        files.append(f"conditioning_depth_{name}.png")
    echo_done(out_dir, files)
    _print_claims(claim_rows(result))


@click.command("depth-accuracy")
@click.option("--depths", type=NumberList(int, minimum=1), default="1,3,6,8,10,12", show_default=True,
              help="Hidden-layer counts (P2: 1, 3, 6, 8, 10, 12).")
@click.option("--width", type=COUNT, default=512, show_default=True)
@click.option("--data", type=click.Choice(["mnist", "digits", "auto"]), default="auto", show_default=True,
              help=DATA_HELP)
@click.option("--data-dir", type=click.Path(), default=None, help=DATA_DIR_HELP)
@click.option("--epochs", type=COUNT, default=5, show_default=True, help="Passes over the training images.")
@click.option("--batch-size", type=COUNT, default=500, show_default=True, help="SGD mini-batch size (P2: 500).")
@click.option("--lr-grid", type=NumberList(positive=True), default="1,3,10,30", show_default=True,
              help="Learning rates tried per depth (the NTK parameterization wants large steps).")
@click.option("--selection-steps", type=COUNT, default=20, show_default=True,
              help="SGD steps of each learning rate's trial run before the held-out comparison.")
@click.option("--holdout", type=Number(minimum=0.0, maximum=1.0), default=0.1, show_default=True,
              help="Fraction of the training images held out for the learning-rate choice.")
@click.option("--train-limit", type=COUNT, default=None, show_default="all",
              help="Use a random subset of the training images (quick runs).")
@click.option("--test-limit", type=COUNT, default=None, show_default="all",
              help="Use a random subset of the test images.")
@click.option("--seeds", type=NumberList(int, minimum=0), default="0", show_default=True,
              help="Seeds (initialization and batch order); one run per depth and seed.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--threads", type=COUNT, default=None, show_default="all cores", help="PyTorch CPU threads.")
@grid_options("(depth, seed) runs")
@click.option("--resume", is_flag=True, help="Keep every finished run's file in OUT/runs and reuse it.")
@click.option("--out", type=click.Path(), default="runs/depth-accuracy", show_default=True, help="Output folder.")
def depth_accuracy_command(depths, width, data, data_dir, epochs, batch_size, lr_grid, selection_steps, holdout,
                           train_limit, test_limit, seeds, device, threads, workers, scheduler, resume, out):
    """P2 §5: MNIST test accuracy and training loss of bias-free ReLU networks by depth, beside P2's table."""
    from sparsentk import plotting
    from sparsentk.experiments import _figures
    from sparsentk.experiments.depth_accuracy import claim_rows, depth_accuracy_study, resolve_device

    out_dir = output_dir(out)
    check_mnist_dir(data, data_dir)
    device = resolve_device(device)
    with _status("depth-accuracy study") as say:
        result = depth_accuracy_study(depths=depths, width=width, data=data, data_dir=data_dir, epochs=epochs,
                                      batch_size=batch_size, lr_grid=lr_grid, selection_steps=selection_steps,
                                      holdout=holdout, train_limit=train_limit, test_limit=test_limit, seeds=seeds,
                                      device=device, threads=threads, out=out_dir / "runs" if resume else None,
                                      workers=workers, executor=grid_executor(scheduler), callback=say)
    atomic_write_json(out_dir / "depth_accuracy.json", result | {"machine": machine_info()})
    plotting.save(_figures.depth_accuracy(result), out_dir / "depth_accuracy.png")
    echo_done(out_dir, ["depth_accuracy.json", "depth_accuracy.png"])
    for depth, row in result["per_depth"].items():
        p2 = result["p2"].get(depth)
        click.echo(f"L={depth}: test accuracy {100 * sum(row['accuracy']) / len(row['accuracy']):.2f} %"
                   + (f" (P2 {p2:.2f} %)" if p2 is not None else "")
                   + f", lr {', '.join(f'{lr:g}' for lr in row['lr'])}")
    _print_claims(claim_rows(result))


COMMANDS = (conditioning_command, depth_accuracy_command)
