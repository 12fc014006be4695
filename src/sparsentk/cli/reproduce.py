"""``sparsentk reproduce``: the papers' experiments and the full report (a thin shell over sparsentk.experiments)."""

from __future__ import annotations

from contextlib import contextmanager

import click

from sparsentk import plotting
from sparsentk._io import atomic_write_json, machine_info
from sparsentk.cli._common import (
    COUNT,
    POSITIVE,
    SEED,
    STEPS,
    Number,
    NumberList,
    check_mnist_dir,
    echo_done,
    number_list,
    output_dir,
)
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
    """Reproduce the three papers' experiments (P1, P2, P3) and write the full report."""


@reproduce_group.command("convergence")
@click.option("--biases", type=NumberList(minimum=0.0), default="0,0.5,1,1.5", show_default=True,
              help="Comma-separated biases.")
@click.option("--width", type=COUNT, default=128, show_default=True, help="Hidden width m of every network.")
@click.option("--n", type=COUNT, default=32, show_default=True, help="Training points on the sphere.")
@click.option("--dim", type=COUNT, default=16, show_default=True, help="Input dimension.")
@click.option("--teacher", type=click.Choice(["relu", "linear"]), default="relu", show_default=True,
              help="Teacher of the labels: relu(w*·x) or w*·x.")
@click.option("--steps", type=STEPS, default=2000, show_default=True, help="GD steps per network.")
@click.option("--seeds", type=NumberList(int, minimum=0), default="0,1,2", show_default=True,
              help="Comma-separated seeds.")
@click.option("--lr-rule", type=click.Choice(["theorem", "fixed"]), default="theorem", show_default=True,
              help="theorem: η(B) ∝ λ(B)e^{B²} with B = 0 at 1/λ_max; fixed: the B = 0 step for every bias.")
@click.option("--lr-scale", type=POSITIVE, default=1.0, show_default=True,
              help="Multiplies the B = 0 step 1/λ_max.")
@click.option("--out", type=click.Path(), default="runs/convergence", show_default=True, help="Output folder.")
def convergence_command(biases, width, n, dim, teacher, steps, seeds, lr_rule, lr_scale, out):
    """P1 Figure 2: log training loss against the GD step for several biases; fitted final slopes and a verdict."""
    output_dir(out)
    with status("convergence study") as say:
        result = convergence_study(biases=tuple(number_list(biases, "--biases")), width=width, n=n, dim=dim,
                                   teacher=teacher, steps=steps, seeds=tuple(number_list(seeds, "--seeds", int)),
                                   lr_rule=lr_rule, lr_scale=lr_scale, callback=say)
    out_dir = output_dir(out)
    atomic_write_json(out_dir / "convergence.json", result | {"machine": machine_info()})
    plotting.save(plotting.convergence_curves(result), out_dir / "convergence.png")
    echo_done(out_dir, ["convergence.json", "convergence.png"])
    capped = sorted({run["bias"] for run in result["runs"] if run.get("lr_capped")})
    if capped:
        click.echo(f"note: the step size was capped at 1.9/λ_max(H∞) for B = {', '.join(f'{b:g}' for b in capped)} "
                   f"(--lr-scale {lr_scale:g} with --lr-rule {lr_rule} asks for more than the network can take)")
    click.echo(result["verdict"])


@reproduce_group.command("mnist-sparsity")
@click.option("--biases", type=NumberList(minimum=0.0), default="0.5,1.0,1.5", show_default=True,
              help="Comma-separated thresholds B (bias −B).")
@click.option("--data", type=click.Choice(["mnist", "digits", "auto"]), default="auto", show_default=True,
              help="auto: MNIST when its IDX files are found, else scikit-learn's digits (offline).")
@click.option("--data-dir", type=click.Path(), default=None,
              help="Folder with the four MNIST IDX files (raw or .gz); default $SPARSENTK_MNIST_DIR or the cache.")
@click.option("--epochs", type=COUNT, default=3, show_default=True, help="Passes over the training images.")
@click.option("--batch-size", type=COUNT, default=128, show_default=True, help="SGD mini-batch size.")
@click.option("--lr", type=POSITIVE, default=5e-3, show_default=True, help="SGD step size.")
@click.option("--momentum", type=Number(minimum=0.0, maximum=1.0), default=0.9, show_default=True,
              help="SGD momentum, in [0, 1].")
@click.option("--width", type=COUNT, default=1024, show_default=True, help="Units per hidden layer.")
@click.option("--depth", type=COUNT, default=6, show_default=True, help="Hidden layers.")
@click.option("--train-limit", type=COUNT, default=None, show_default="all",
              help="Use a random subset of the training images.")
@click.option("--test-limit", type=COUNT, default=None, show_default="all",
              help="Use a random subset of the test images.")
@click.option("--threads", type=COUNT, default=None, show_default="all cores", help="PyTorch threads.")
@click.option("--seeds", type=NumberList(int, minimum=0), default="0", show_default=True,
              help="Comma-separated seeds (initialization and batch order); one run per bias and seed.")
@click.option("--out", type=click.Path(), default="runs/mnist-sparsity", show_default=True, help="Output folder.")
def mnist_sparsity_command(biases, data, data_dir, epochs, batch_size, lr, momentum, width, depth, train_limit,
                           test_limit, threads, seeds, out):
    """P1 Figure 1: per-layer sparsity over training of a deep MLP whose biases start at −B."""
    output_dir(out)
    check_mnist_dir(data, data_dir)
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
@click.option("--quick/--full", default=False, show_default=True, help="Quick mode: a few minutes on 2 cores.")
@click.option("--data", type=click.Choice(["mnist", "digits", "auto"]), default="auto", show_default=True,
              help="auto: MNIST when its IDX files are found, else scikit-learn's digits (offline).")
@click.option("--data-dir", type=click.Path(), default=None, show_default="$SPARSENTK_MNIST_DIR or the cache",
              help="Folder with the MNIST IDX files.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Base seed of every study.")
@click.option("--resume", is_flag=True, show_default=True,
              help="Reuse the parts already finished in --out (same configuration).")
@click.option("--parts", default=",".join(PARTS), show_default=True, help="Comma-separated parts to run.")
@click.option("--out", type=click.Path(), default="report", show_default=True, help="Output folder.")
def report_command(quick, data, data_dir, seed, resume, parts, out):
    """Run every study and write report.md, report.html (self-contained), results.json and the figures."""
    names = tuple(p.strip() for p in parts.split(",") if p.strip())
    unknown = [p for p in names if p not in PARTS]
    if not names or unknown:
        raise click.BadParameter(f"expected comma-separated parts among {', '.join(PARTS)}, got {parts!r}",
                                 param_hint="--parts")
    out_dir = output_dir(out)
    check_mnist_dir(data, data_dir)
    with status(f"sparsentk report ({'quick' if quick else 'full'})") as say:
        summary = reproduce_report(out_dir, quick=quick, data=data, data_dir=data_dir, seed=seed, resume=resume,
                                   parts=names, progress=say)
    echo_done(out_dir, ["report.md", "report.html", "results.json", "figures (*.png)", "parts/"])
    for row in summary["claims"]:
        click.echo(f"[{row['verdict']}] {row['claim']}")


from sparsentk.cli.reproduce_deep import COMMANDS as _DEEP_COMMANDS  # noqa: E402  (P2's studies, their own module)

for _command in _DEEP_COMMANDS:
    reproduce_group.add_command(_command)

from sparsentk.cli.reproduce_p3 import lazy_command, width_command  # noqa: E402  (P3's studies, their own module)

reproduce_group.add_command(width_command)
reproduce_group.add_command(lazy_command)
