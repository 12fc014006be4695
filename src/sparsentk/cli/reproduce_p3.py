"""``sparsentk reproduce width`` and ``sparsentk reproduce lazy``: P3's width study and initialization sweep (a thin
shell over ``sparsentk.experiments.width`` and ``.lazy``)."""

from __future__ import annotations

import click

from sparsentk._io import atomic_write_json, machine_info
from sparsentk.cli._common import (
    COUNT,
    POSITIVE,
    SEED,
    NumberList,
    check_mnist_dir,
    echo_done,
    grid_executor,
    grid_options,
    output_dir,
)


def _dims(text: str | None) -> tuple | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    out: list = []
    for item in items:
        if item == "sqrt":
            out.append("sqrt")
            continue
        try:
            value = int(item)
        except ValueError:
            raise ValueError(f"--dims: expected positive integers or 'sqrt', got {item!r} in {text!r}") from None
        if value < 1:
            raise ValueError(f"--dims: expected positive integers or 'sqrt', got {value}")
        out.append(value)
    if not out:
        raise ValueError(f"--dims: expected at least one value, got {text!r}")
    return tuple(out)


@click.command("width")
@click.option("--quick/--full", default=True, help="Preset grid: quick (n ≤ 256, 3 seeds, d₀ = ⌈√n⌉) or full "
              "(n ≤ 1024, 5 seeds, d₀ = 4, 8, ⌈√n⌉). The options below override the preset.")
@click.option("--ns", type=NumberList(int, minimum=2), default=None, help="Comma-separated numbers of points n.")
@click.option("--dims", default=None, help="Comma-separated input dimensions d₀; 'sqrt' means d₀ = ⌈√n⌉.")
@click.option("--families", default=None, help="Comma-separated families among a, b, c0, c1, c2.")
@click.option("--seeds", type=NumberList(int, minimum=0), default=None, help="Comma-separated seeds.")
@click.option("--eps", type=NumberList(positive=True), default=None, help="Relative-loss targets ε.")
@click.option("--steps", type=NumberList(int, minimum=1), default=None, help="Step budgets T.")
@click.option("--lr-scale", type=POSITIVE, default=None, help="c in η = c/λ_max(K₀) (stable below 2).")
@click.option("--max-factor", type=COUNT, default=None, help="Search widths up to this many times n.")
@click.option("--data", default="sphere", show_default=True,
              help="'sphere' (unit inputs, ±1/√n labels) or a data file (.npz/.npy/.csv).")
@grid_options("configurations")
@click.option("--no-resume", is_flag=True, help="Recompute configurations already finished in --out.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="First seed of the preset.")
@click.option("--out", type=click.Path(file_okay=False), default="runs/width", show_default=True)
def width_command(quick, ns, dims, families, seeds, eps, steps, lr_scale, max_factor, data, workers, scheduler,
                  no_resume, seed, out):
    """P3: the smallest width at which GD memorizes n points, against n, with fitted exponents (resumable)."""
    from sparsentk.cli.reproduce import status
    from sparsentk.experiments import width

    kwargs = width.settings(quick, seed=seed)
    overrides = {"ns": ns, "dims": _dims(dims), "seeds": seeds, "eps": eps, "steps": steps, "lr_scale": lr_scale,
                 "max_factor": max_factor,
                 "families": None if families is None else tuple(f.strip() for f in families.split(","))}
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    if eps is not None or steps is not None:
        kwargs["target"] = None  # the default: 1e-2 (or the smallest ε) within the largest T
    out_dir = output_dir(out)
    executor = grid_executor(scheduler)
    with status("width study") as say:
        result = width.width_study(**kwargs, data=data, out=out_dir / "grid", executor=executor, workers=workers,
                                   resume=not no_resume, callback=say)
    atomic_write_json(out_dir / "width.json", result | {"machine": machine_info()})
    files = width.report_figures(result, out_dir)
    echo_done(out_dir, ["width.json", *files.values(), "grid/"])
    for row in width.claims(result):
        click.echo(f"[{row['verdict']}] {row['claim']}: {row['measured']}")
    if result["failed"]:
        click.echo(f"{len(result['failed'])} configuration(s) failed; see width.json", err=True)


@click.command("lazy")
@click.option("--quick/--full", default=True, help="Preset: quick (MNIST subset, narrow nets, few epochs) or "
              "full (P3's setting: 60 000 images, width 1000, 10 ω₂, 5 runs, 300 epochs).")
@click.option("--omega2", type=NumberList(positive=True), default=None, help="Comma-separated ω₂ (default: P3's).")
@click.option("--runs", type=COUNT, default=None, help="Students per ω₂ and loss.")
@click.option("--losses", type=click.Choice(["ce", "mse", "both"]), default="both", show_default=True)
@click.option("--data", type=click.Choice(["mnist", "digits", "auto"]), default="auto", show_default=True,
              help="auto: MNIST when its IDX files are found, else scikit-learn's digits (offline).")
@click.option("--data-dir", type=click.Path(), default=None,
              help="Folder with the four MNIST IDX files; default $SPARSENTK_MNIST_DIR or the cache.")
@click.option("--train-limit", type=COUNT, default=None, help="Random subset of the training images.")
@click.option("--test-limit", type=COUNT, default=None, help="Random subset of the test images.")
@click.option("--epochs", type=COUNT, default=None, help="Student epochs.")
@click.option("--teacher-epochs", type=COUNT, default=None, help="Most teacher epochs (stops at 100 % accuracy).")
@click.option("--teacher-lr", type=POSITIVE, default=None, help="Teacher's SGD step (quick preset 0.1, full 0.01).")
@click.option("--width", type=COUNT, default=None, help="Teacher width.")
@click.option("--student-width", type=COUNT, default=None, help="Student width.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--threads", type=COUNT, default=None, help="PyTorch threads per run.")
@grid_options("students")
@click.option("--no-resume", is_flag=True, help="Retrain the teacher and the students already finished in --out.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="runs/lazy", show_default=True)
def lazy_command(quick, omega2, runs, losses, data, data_dir, train_limit, test_limit, epochs, teacher_epochs,
                 teacher_lr, width, student_width, device, threads, workers, scheduler, no_resume, seed, out):
    """P3 Figure 1: student accuracy and per-layer movement against ω₂ at a fixed ω₁ω₂ (teacher–student)."""
    from sparsentk.cli.reproduce import status
    from sparsentk.experiments import lazy

    check_mnist_dir(data, data_dir)
    kwargs = lazy.settings(quick, seed=seed, data=data, data_dir=data_dir)
    overrides = {"omega2": omega2, "runs": runs, "train_limit": train_limit, "test_limit": test_limit,
                 "epochs": epochs, "teacher_epochs": teacher_epochs, "teacher_lr": teacher_lr, "width": width,
                 "student_width": student_width}
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    kwargs["losses"] = ("ce", "mse") if losses == "both" else (losses,)
    if threads is not None:
        kwargs["threads"] = threads
    out_dir = output_dir(out)
    executor = grid_executor(scheduler)
    with status("initialization sweep") as say:
        result = lazy.lazy_study(**kwargs, device=device, out=out_dir, executor=executor,
                                 workers=workers, resume=not no_resume, callback=say)
    atomic_write_json(out_dir / "lazy.json", result | {"machine": machine_info()})
    files = lazy.report_figures(result, out_dir)
    echo_done(out_dir, ["lazy.json", *files.values(), "runs/"])
    if quick:
        click.echo("quick mode: a subset of the data, narrow nets and few epochs (see lazy.json's config)")
    for row in lazy.claims(result):
        click.echo(f"[{row['verdict']}] {row['claim']}: {row['measured']}")
