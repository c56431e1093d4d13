"""The ``robbench`` command line: thin Typer commands over :mod:`robbench.api`."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from robbench.errors import RobbenchError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="robbench: honest benchmarks of adversarial defenses.",
)


zoo_app = typer.Typer(no_args_is_help=True, help="Train, list and verify zoo models.")


app.add_typer(zoo_app, name="zoo")


out = Console()


err = Console(stderr=True)


def _fail(exc: RobbenchError) -> None:
    err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
    if exc.hint:
        err.print(f"  [bold]fix:[/] {escape(exc.hint)}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def _check_choice(value: str | None, choices: tuple[str, ...], option: str) -> None:
    if value is not None and value not in choices:
        raise RobbenchError(f"unknown {option} {value!r}", hint=f"use one of {', '.join(choices)}")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except RobbenchError as exc:  # errors raised outside a command's own handler
        err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
        if exc.hint:
            err.print(f"  [bold]fix:[/] {escape(exc.hint)}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
