"""The ``sparsentk`` command line: a thin click shell over the library (one module per command group).

Commands are imported when they run (or when their own ``--help`` is asked for), so ``sparsentk --help`` loads
neither scipy, scikit-learn, matplotlib nor numba. To add a top-level command, add it to ``COMMANDS``.
"""

from __future__ import annotations

import importlib
import sys

import click

from sparsentk import __version__

#: name -> (module, attribute, the one-line help shown by ``sparsentk --help``).
COMMANDS = {
    "train": ("sparsentk.cli.train", "train_command",
              "Train a one-hidden-layer ReLU network with large bias by full-batch GD (P1, paper-notes §1)."),
    "kernel": ("sparsentk.cli.kernel", "kernel_command",
               "Compute H∞ (P1's bias-generalized NTK) on the data and plot its spectrum and λ_min against B."),
    "audit": ("sparsentk.cli.audit", "audit_command",
              "Train, then set each of P1's claims beside its measured value (bounds up to constants)."),
    "sweep": ("sparsentk.cli.audit", "sweep_command",
              "Audit every (bias, width) pair; table and plots of measured values against B and m with fitted "
              "slopes."),
    "reproduce": ("sparsentk.cli.reproduce", "reproduce_group",
                  "Reproduce the three papers' experiments (P1, P2, P3) and write the full report."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands in ``COMMANDS`` are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *(name for name in super().list_commands(ctx) if name not in COMMANDS)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, attribute, _ = COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2] if name in COMMANDS else self.commands[name].get_short_help_str())
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="sparsentk")
def cli() -> None:
    """sparsentk: sparse wide ReLU networks with large bias and their bias-generalized NTK.

    Bad arguments exit with status 2 and one line on stderr; Ctrl-C exits with status 130.
    """


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: every user error becomes a one-line message and exit status 2."""
    from sparsentk.cli._common import run_cli

    sys.exit(run_cli(cli, argv))
