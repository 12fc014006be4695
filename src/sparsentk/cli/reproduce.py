"""``sparsentk reproduce``: the papers' experiments and the full report (a thin shell over sparsentk.experiments)."""

from __future__ import annotations

from contextlib import contextmanager

import click

from sparsentk import plotting
from sparsentk._io import atomic_write_json, machine_info
from sparsentk.cli._common import echo_done, number_list, output_dir
from sparsentk.experiments import convergence_study, mnist_sparsity_study, reproduce_report
from sparsentk.experiments.report import PARTS


@contextmanager
def status(title: str):
    """A rich spinner whose text follows the library's progress messages."""
    from rich.console import Console

    console = Console(stderr=True)
    with console.status(title) as spinner:
        def say(message: str) -> None:
            spinner.update(f"{title}: {message}")
            console.log(message)

        yield say


@click.group("reproduce")
def reproduce_group() -> None:
    """Reproduce the papers' experiments (P1 Figures 1 and 2) and write the full report."""


@reproduce_group.command("convergence")
@click.option("--biases", default="0,0.5,1,1.5", show_default=True, help="Comma-separated biases.")
@click.option("--width", type=int, default=128, show_default=True)
@click.option("--n", type=int, default=32, show_default=True, help="Training points on the sphere.")
@click.option("--dim", type=int, default=16, show_default=True)
@click.option("--teacher", type=click.Choice(["relu", "linear"]), default="relu", show_default=True)
@click.option("--steps", type=int, default=2000, show_default=True)
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds.")
@click.option("--lr-rule", type=click.Choice(["theorem", "fixed"]), default="theorem", show_default=True,
              help="theorem: η(B) ∝ λ(B)e^{B²} with B = 0 at 1/λ_max; fixed: the B = 0 step for every bias.")
@click.option("--lr-scale", type=float, default=1.0, show_default=True, help="Multiplies the B = 0 step 1/λ_max.")
@click.option("--out", type=click.Path(file_okay=False), default="runs/convergence", show_default=True)
def convergence_command(biases, width, n, dim, teacher, steps, seeds, lr_rule, lr_scale, out):
    """P1 Figure 2: log training loss against the GD step for several biases; fitted final slopes and a verdict."""
    with status("convergence study") as say:
        result = convergence_study(biases=tuple(number_list(biases, "--biases")), width=width, n=n, dim=dim,
                                   teacher=teacher, steps=steps, seeds=tuple(number_list(seeds, "--seeds", int)),
                                   lr_rule=lr_rule, lr_scale=lr_scale, callback=say)
    out_dir = output_dir(out)
    atomic_write_json(out_dir / "convergence.json", result | {"machine": machine_info()})
    plotting.save(plotting.convergence_curves(result), out_dir / "convergence.png")
    echo_done(out_dir, ["convergence.json", "convergence.png"])
    click.echo(result["verdict"])


@reproduce_group.command("mnist-sparsity")
@click.option("--biases", default="0.5,1.0,1.5", show_default=True, help="Comma-separated thresholds B (bias −B).")
@click.option("--data", type=click.Choice(["mnist", "digits", "auto"]), default="auto", show_default=True,
              help="auto: MNIST when its IDX files are found, else scikit-learn's digits (offline).")
@click.option("--data-dir", type=click.Path(), default=None,
              help="Folder with the four MNIST IDX files (raw or .gz); default $SPARSENTK_MNIST_DIR or the cache.")
@click.option("--epochs", type=int, default=3, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--lr", type=float, default=5e-3, show_default=True)
@click.option("--momentum", type=float, default=0.9, show_default=True)
@click.option("--width", type=int, default=1024, show_default=True)
@click.option("--depth", type=int, default=6, show_default=True)
@click.option("--train-limit", type=int, default=None, help="Use a random subset of the training images.")
@click.option("--test-limit", type=int, default=None, help="Use a random subset of the test images.")
@click.option("--threads", type=int, default=None, help="PyTorch threads (default: all cores).")
@click.option("--seeds", default="0", show_default=True,
              help="Comma-separated seeds (initialization and batch order); one run per bias and seed.")
@click.option("--out", type=click.Path(file_okay=False), default="runs/mnist-sparsity", show_default=True)
def mnist_sparsity_command(biases, data, data_dir, epochs, batch_size, lr, momentum, width, depth, train_limit,
                           test_limit, threads, seeds, out):
    """P1 Figure 1: per-layer sparsity over training of a deep MLP whose biases start at −B."""
    with status("MNIST sparsity study") as say:
        result = mnist_sparsity_study(biases=tuple(number_list(biases, "--biases")), data=data, data_dir=data_dir,
                                      epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, width=width,
                                      depth=depth, train_limit=train_limit, test_limit=test_limit,
                                      seeds=tuple(number_list(seeds, "--seeds", int)), threads=threads,
                                      callback=say)
    out_dir = output_dir(out)
    atomic_write_json(out_dir / "sparsity.json", result | {"machine": machine_info()})
    plotting.save(plotting.layer_sparsity(result), out_dir / "sparsity.png")
    echo_done(out_dir, ["sparsity.json", "sparsity.png"])
    for run in result["runs"]:
        changes = ", ".join(f"{lay['max_change']:.3f}" for lay in run["layers"])
        click.echo(f"B={run['bias']:g}, seed {run['seed']}: accuracy {run['accuracy'][-1]:.4f}; largest change per "
                   f"layer {changes}")


@reproduce_group.command("report")
@click.option("--quick/--full", default=False, help="Quick mode: a few minutes on 2 cores.")
@click.option("--data", type=click.Choice(["mnist", "digits", "auto"]), default="auto", show_default=True)
@click.option("--data-dir", type=click.Path(), default=None, help="Folder with the MNIST IDX files.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Reuse the parts already finished in --out (same configuration).")
@click.option("--parts", default=",".join(PARTS), show_default=True, help="Comma-separated parts to run.")
@click.option("--out", type=click.Path(file_okay=False), default="report", show_default=True)
def report_command(quick, data, data_dir, seed, resume, parts, out):
    """Run every study and write report.md, report.html (self-contained), results.json and the figures."""
    out_dir = output_dir(out)
    names = tuple(p.strip() for p in parts.split(",") if p.strip())
    with status(f"sparsentk report ({'quick' if quick else 'full'})") as say:
        summary = reproduce_report(out_dir, quick=quick, data=data, data_dir=data_dir, seed=seed, resume=resume,
                                   parts=names, progress=say)
    echo_done(out_dir, ["report.md", "report.html", "results.json", "figures (*.png)", "parts/"])
    for row in summary["claims"]:
        click.echo(f"[{row['verdict']}] {row['claim']}")
