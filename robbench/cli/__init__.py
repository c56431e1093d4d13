"""The ``robbench`` command line: thin Typer commands over :mod:`robbench.api`."""

from robbench.cli import info, results, run, zoo  # noqa: F401  (register the commands)
from robbench.cli.app import app, main

__all__ = ["app", "main"]
