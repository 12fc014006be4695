"""Helpers shared by the CLI commands: data options, the output folder, and error handling."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import numpy as np

from sparsentk import data as snt_data

ERROR_EXIT = 2


def run_cli(group: click.Group, argv: list[str] | None) -> int:
    """Run ``group``; a library ``ValueError``/``TypeError``/``FileNotFoundError`` becomes one line on stderr."""
    try:
        group.main(args=argv, prog_name="sparsentk", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.exceptions.Exit as err:
        return err.exit_code
    except (ValueError, TypeError, FileNotFoundError, FloatingPointError) as err:
        click.echo(f"sparsentk: error: {err}", err=True)
        return ERROR_EXIT
    except KeyboardInterrupt:
        click.echo("Interrupted; files already written are complete.", err=True)
        return 130
    return 0


def data_options(*, n: int = 256, dim: int = 16) -> Callable:
    """Decorator adding ``--data``, ``--n``, ``--dim``, ``--teacher``, ``--noise`` to a command."""

    def decorate(func: Callable) -> Callable:
        options = [
            click.option(
                "--data",
                default="sphere",
                show_default=True,
                help="'sphere' (unit inputs, labels from a unit teacher), 'digits' (scikit-learn's 8×8 digits, "
                "even vs odd as ±1), or a path to .npz (X, y) / .npy / .csv.",
            ),
            click.option("--n", type=int, default=n, show_default=True, help="Number of samples (sphere data)."),
            click.option("--dim", type=int, default=dim, show_default=True, help="Input dimension (sphere data)."),
            click.option(
                "--teacher", type=click.Choice(["relu", "linear"]), default="relu", show_default=True,
                help="Teacher of the sphere labels: relu(w*·x) or w*·x.",
            ),
            click.option("--noise", type=float, default=0.0, show_default=True, help="Label noise std (sphere)."),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def load_data(data: str, n: int, dim: int, teacher: str, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(X, y)`` named by the ``--data`` options."""
    if data == "sphere":
        return snt_data.sphere(n, dim, teacher=teacher, noise=noise, seed=seed)
    if data == "digits":
        return snt_data.digits()
    return snt_data.load(data)


def output_dir(path: str | Path) -> Path:
    """Create (if needed) and return the output folder."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out: cannot create output folder {str(out)!r}: {err}") from err
    return out


def number_list(text: str, name: str, kind: type = float) -> list:
    """Parse a comma-separated list of numbers (``kind`` float or int) given to option ``name``."""
    what = "integers" if kind is int else "numbers"
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise ValueError(f"{name}: expected comma-separated {what}, got {text!r}") from err
    if not values:
        raise ValueError(f"{name}: expected at least one of the comma-separated {what}, got {text!r}")
    return values


def echo_done(out: Path, files: list[str]) -> None:
    """Tell the user what was written where."""
    click.echo(f"wrote {', '.join(files)} to {out}/")

