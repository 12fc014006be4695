"""The ``sparsentk`` command line: a thin click shell over the library (one module per command group)."""

from __future__ import annotations

import sys

import click

from sparsentk import __version__
from sparsentk.cli.audit import audit_command, sweep_command
from sparsentk.cli.kernel import kernel_command
from sparsentk.cli.reproduce import reproduce_group
from sparsentk.cli.train import train_command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="sparsentk")
def cli() -> None:
    """sparsentk: sparse wide ReLU networks with large bias and their bias-generalized NTK."""


cli.add_command(train_command)
cli.add_command(kernel_command)
cli.add_command(audit_command)
cli.add_command(sweep_command)
cli.add_command(reproduce_group)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: library errors become a one-line message and exit status 2."""
    from sparsentk.cli._common import run_cli

    sys.exit(run_cli(cli, argv))
