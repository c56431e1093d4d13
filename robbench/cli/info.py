"""``robbench ls`` and ``robbench doctor``: what is registered, and what this installation lacks."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from robbench.cli.app import _fail, app, out
from robbench.errors import RobbenchError


@app.command("ls")
def ls(kind: str | None = typer.Argument(None, help="defenses | attacks | models | datasets")) -> None:
    """List registered components with a one-line description each."""
    from robbench import api

    try:
        listing = api.list_components(kind)
    except RobbenchError as exc:
        _fail(exc)
        return
    for k, items in listing.items():
        out.print(f"[bold]{k}[/]")
        for name, desc in items:
            out.print(f"  {name:<22} {escape(desc)}", highlight=False)


@app.command()
def doctor(
    zoo_dir: str | None = typer.Option(None, "--zoo-dir", help="model cache to inspect"),
    data_dir: str | None = typer.Option(None, "--data-dir", help="folder with the data set files"),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="recheck the sha256 of every zoo checkpoint"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Check this installation: versions, device, data sets, zoo (with hashes), extras, plugins."""
    import json

    from robbench.doctor import SECTIONS, diagnose

    findings = diagnose(zoo_dir=zoo_dir, data_dir=data_dir, verify=verify)
    if as_json:
        sys.stdout.write(json.dumps([f.as_dict() for f in findings], indent=2) + "\n")
        return
    from rich.markup import escape

    marks = {
        "ok": "[green]ok[/]     ",
        "missing": "[yellow]missing[/]",
        "bad": "[red]BAD[/]    ",
        "info": "[dim]info[/]   ",
    }
    for section in SECTIONS:
        out.print(f"[bold]{section}[/]")
        for f in (f for f in findings if f.section == section):
            out.print(f"  {marks[f.status]} {escape(f.name):<24} {escape(f.detail)}", highlight=False, soft_wrap=True)
            if f.fix and f.status != "ok":
                out.print(f"  {'':<7} {'':<24} [bold]fix:[/] {escape(f.fix)}", highlight=False, soft_wrap=True)
