"""Helpers shared by the CLI commands: checked option types, data options, the output folder, and error handling.

Every error a user can cause ends as ONE line on stderr, ``sparsentk: error: --flag: what was expected, what came``,
and exit status 2: click's usage errors (formatted here without the usage block), the library's ``ValueError`` /
``TypeError`` (whose leading argument name is rewritten to the flag the user typed), files that cannot be read or
written, and requests that do not fit in memory. Ctrl-C exits with status 130.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import numpy as np

from sparsentk._validate import check_float, check_int

ERROR_EXIT = 2
INTERRUPT_EXIT = 130

#: Library argument names that a command's flags carry under another name (applied when the command has the flag).
ALIASES = {"path": "--data", "X": "--data", "y": "--data", "data_dir": "--data-dir", "lr_scale": "--lr-scale"}

_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:, [A-Za-z_][A-Za-z0-9_]*)*):\s")


# ------------------------------------------------------------------------------------------------ errors
def _command_for(group: click.Group, argv: Sequence[str]) -> click.Command:
    """The (sub)command that ``argv`` invokes (the group itself when none is named)."""
    cmd: click.Command = group
    for token in argv:
        if not isinstance(cmd, click.Group):
            break
        if token.startswith("-"):
            continue
        try:
            sub = cmd.get_command(click.Context(cmd), token)
        except Exception:  # a command that cannot load is reported by click itself
            sub = None
        if sub is None:
            break
        cmd = sub
    return cmd


def _flag_names(cmd: click.Command) -> dict[str, str]:
    """Library argument name -> the flag of ``cmd`` that sets it."""
    names: dict[str, str] = {}
    for param in cmd.params:
        if isinstance(param, click.Option) and param.name:
            longest = max(param.opts, key=len)
            names[param.name] = longest
            names[longest.lstrip("-").replace("-", "_")] = longest
    flags = set(names.values())
    for library, flag in ALIASES.items():
        if flag in flags and library not in names:
            names[library] = flag
    return names


def flag_message(message: str, cmd: click.Command | None) -> str:
    """``message`` on one line, its leading library argument name replaced by ``cmd``'s flag for it."""
    message = " ".join(str(message).split())
    if cmd is None:
        return message
    match = _PREFIX.match(message)
    if match:
        names = _flag_names(cmd)
        parts = [p.strip() for p in match.group(1).split(",")]
        if all(p in names for p in parts):
            flags = ", ".join(dict.fromkeys(names[p] for p in parts))
            message = flags + ": " + message[match.end():]
    return message


def _usage_message(err: click.UsageError) -> str:
    """A click usage error as one line naming the flag."""
    if isinstance(err, click.BadParameter) and err.param is not None and err.param_hint is None:
        param = err.param
        flag = max(param.opts, key=len) if isinstance(param, click.Option) else param.human_readable_name
        text = f"{flag}: {err.message}"
    else:
        text = err.format_message()
    ctx = err.ctx
    if ctx is not None:
        text += f" (see '{ctx.command_path} --help')"
    return " ".join(text.split())


def run_cli(group: click.Group, argv: Sequence[str] | None) -> int:
    """Run ``group`` on ``argv``; every user error becomes one line on stderr and exit status 2."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)

    def fail(message: str) -> int:
        click.echo(f"sparsentk: error: {flag_message(message, _command_for(group, args))}", err=True)
        return ERROR_EXIT

    try:
        result = group.main(args=args, prog_name="sparsentk", standalone_mode=False)
    except click.exceptions.Abort:  # click's form of a KeyboardInterrupt (Ctrl-C) inside a command
        click.echo("sparsentk: interrupted; files already written are complete", err=True)
        return INTERRUPT_EXIT
    except click.exceptions.NoArgsIsHelpError as err:  # a bare group (`sparsentk`, `sparsentk reproduce`): its help
        click.echo(err.format_message())
        return 0
    except click.UsageError as err:
        click.echo(f"sparsentk: error: {_usage_message(err)}", err=True)
        return ERROR_EXIT
    except click.ClickException as err:
        return fail(err.format_message())
    except click.exceptions.Exit as err:
        return err.exit_code
    except (ValueError, TypeError, FloatingPointError) as err:
        return fail(str(err))
    except FileNotFoundError as err:
        if err.filename is None:  # the library's own message names the argument
            return fail(str(err))
        return fail(f"no such file or folder {err.filename!r}")
    except MemoryError as err:
        detail = str(err) or "the arrays do not fit in memory"
        return fail(f"not enough memory for this request: {detail}; choose smaller sizes")
    except OSError as err:
        where = f" {err.filename!r}" if getattr(err, "filename", None) else ""
        return fail(f"cannot access{where}: {err.strerror or err}")
    except KeyboardInterrupt:
        click.echo("sparsentk: interrupted; files already written are complete", err=True)
        return INTERRUPT_EXIT
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


# ------------------------------------------------------------------------------------------------ option types
def _strip_name(message: str) -> str:
    """A library message without its leading ``name:`` (click adds the flag)."""
    match = _PREFIX.match(message)
    return message[match.end():] if match else message


class Number(click.ParamType):
    """A number checked by the library's validators (``check_int`` / ``check_float``) at parse time.

    Parameters mirror the validators: ``minimum``, ``maximum`` and ``positive`` (floats).
    """

    def __init__(self, kind: type = float, *, minimum: float | None = None, maximum: float | None = None,
                 positive: bool = False) -> None:
        self.kind, self.minimum, self.maximum, self.positive = kind, minimum, maximum, positive
        self.name = "integer" if kind is int else "float"

    def check(self, text: Any, name: str) -> Any:
        if isinstance(text, str):
            try:
                value: Any = int(text.strip()) if self.kind is int else float(text)
            except ValueError:
                what = "an integer" if self.kind is int else "a number"
                raise ValueError(f"{name}: expected {what}, got {text!r}") from None
        else:
            value = text
        if self.kind is int:
            value = check_int(value, name, minimum=None if self.minimum is None else int(self.minimum))
            if self.maximum is not None and value > self.maximum:
                raise ValueError(f"{name}: expected an integer <= {self.maximum:g}, got {value}")
            return value
        return check_float(value, name, minimum=self.minimum, maximum=self.maximum, positive=self.positive)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self.check(value, "value")
        except (ValueError, TypeError) as err:
            self.fail(_strip_name(str(err)), param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "INTEGER" if self.kind is int else "FLOAT"


class NumberList(Number):
    """Comma-separated numbers, each checked like :class:`Number`; at least one."""

    def __init__(self, kind: type = float, **limits: Any) -> None:
        super().__init__(kind, **limits)
        self.name = "list"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, list | tuple):
            return list(value)
        try:
            return parse_list(value, "value", self)
        except (ValueError, TypeError) as err:
            self.fail(_strip_name(str(err)), param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "INTS" if self.kind is int else "FLOATS"


def parse_list(text: str, name: str, number: Number) -> list:
    """Parse comma-separated numbers given to option ``name``, each checked by ``number``."""
    if isinstance(text, list | tuple):  # already parsed by a NumberList option
        return [number.check(v, name) for v in text]
    what = "integers" if number.kind is int else "numbers"
    items = [v.strip() for v in str(text).split(",")]
    if not any(items):
        raise ValueError(f"{name}: expected at least one of the comma-separated {what}, got {text!r}")
    if not all(items):
        raise ValueError(f"{name}: expected comma-separated {what} without empty items, got {text!r}")
    values = []
    for item in items:
        try:
            values.append(number.check(item, name))
        except (ValueError, TypeError) as err:
            raise ValueError(f"{name}: in {text!r}: {_strip_name(str(err))}") from None
    return values


def number_list(text: str, name: str, kind: type = float, **limits: Any) -> list:
    """Parse a comma-separated list of numbers (``kind`` float or int) given to option ``name``.

    ``limits`` (``minimum``, ``maximum``, ``positive``) are checked with the library's validators, under ``name``.
    """
    return parse_list(text, name, Number(kind, **limits))


COUNT = Number(int, minimum=1)
STEPS = Number(int, minimum=0)
SEED = Number(int, minimum=0)
NONNEG = Number(float, minimum=0.0)
POSITIVE = Number(float, positive=True)


# ------------------------------------------------------------------------------------------------ data
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
            click.option("--n", type=COUNT, default=n, show_default=True,
                         help="Number of samples (sphere data only)."),
            click.option("--dim", type=COUNT, default=dim, show_default=True,
                         help="Input dimension (sphere data only)."),
            click.option(
                "--teacher", type=click.Choice(["relu", "linear"]), default="relu", show_default=True,
                help="Teacher of the sphere labels: relu(w*·x) or w*·x.",
            ),
            click.option("--noise", type=NONNEG, default=0.0, show_default=True,
                         help="Label noise std (sphere data only)."),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def load_data(data: str, n: int, dim: int, teacher: str, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(X, y)`` named by the ``--data`` options; sphere-only options given with other data are announced."""
    from sparsentk import data as snt_data

    if data == "sphere":
        return snt_data.sphere(n, dim, teacher=teacher, noise=noise, seed=seed)
    if data == "digits":
        X, y = snt_data.digits()
    elif not data.strip() or not Path(data).exists():
        raise ValueError(f"--data: expected 'sphere', 'digits' or an existing data file, got {data!r} (no such file)")
    else:
        X, y = snt_data.load(data)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        given = [f"--{name}" for name in ("n", "dim", "teacher", "noise")
                 if ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)]
        if given:
            click.echo(f"note: {', '.join(given)} apply to --data sphere only; ignored with --data {data} "
                       f"(n = {X.shape[0]}, dim = {X.shape[1]})", err=True)
    return X, y


def grid_options(what: str) -> Callable:
    """``--workers N`` and ``--scheduler ADDRESS`` for a command whose study runs many configurations through
    :func:`sparsentk.run_grid` (``what`` names them in the help)."""

    def decorate(fn: Callable) -> Callable:
        fn = click.option("--scheduler", default=None, show_default="none (local)",
                          help=f"Address of a dask.distributed scheduler that runs the {what}.")(fn)
        return click.option("--workers", type=COUNT, default=1, show_default=True,
                            help=f"Local processes running {what} side by side (the cores are shared).")(fn)

    return decorate


def grid_executor(scheduler: str | None):
    """The executor behind ``--scheduler`` (a Dask cluster's), or None: :func:`sparsentk.run_grid` then runs
    ``--workers`` local processes itself (a pool that isolates a worker that dies, shut down at the end)."""
    from sparsentk._grid import make_executor

    return make_executor(scheduler=scheduler)


def check_mnist_dir(data: str, data_dir: str | None) -> None:
    """With ``--data mnist``, check before any work that the MNIST files are found (nothing is downloaded)."""
    if data == "mnist":
        from sparsentk import data as snt_data

        snt_data.mnist_dir(data_dir)


# ------------------------------------------------------------------------------------------------ output
def output_dir(path: str | os.PathLike) -> Path:
    """Create (if needed) and return the output folder, after checking that files can be written in it.

    Called before any work, so that an impossible ``--out`` is reported at once.
    """
    text = os.fspath(path)
    if not str(text).strip():
        raise ValueError("--out: expected a folder path, got ''")
    out = Path(text)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {text!r} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".sparsentk-check-"):
            pass
    except OSError as err:
        raise ValueError(f"--out: cannot write into {text!r}: {err.strerror or err}") from None
    return out


@contextmanager
def fresh_outputs(out: Path, names: Sequence[str]) -> Iterator[Path]:
    """Write a run's files into a fresh hidden folder beside ``out``; on exit move them into ``out``.

    The files named ``names`` that a previous run left in ``out`` are removed first (only those: other files in
    the folder are left alone), so ``out`` never mixes two runs' files. Whatever the body wrote is moved in even
    when it ends with an exception (e.g. Ctrl-C after a partial history was written).
    """
    stage = Path(tempfile.mkdtemp(dir=out, prefix=".run-"))
    try:
        yield stage
    finally:
        for name in names:
            target = out / name
            if target.is_file() or target.is_symlink():
                target.unlink()
        for item in sorted(stage.iterdir()):
            os.replace(item, out / item.name)
        shutil.rmtree(stage, ignore_errors=True)


def echo_done(out: Path, files: list[str]) -> None:
    """Tell the user what was written where."""
    click.echo(f"wrote {', '.join(files)} to {out}/")
