"""``python -m sparsentk``: the command-line interface."""

from sparsentk.cli import main

main()
