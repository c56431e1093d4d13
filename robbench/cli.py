"""The ``robbench`` command line: thin Typer commands over :mod:`robbench.api`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from robbench.errors import RobbenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="robbench: honest benchmarks of adversarial defenses.")
zoo_app = typer.Typer(no_args_is_help=True, help="Train, list and verify zoo models.")
app.add_typer(zoo_app, name="zoo")

out = Console()
err = Console(stderr=True)


def _fail(exc: RobbenchError) -> None:
    err.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
    if exc.hint:
        err.print(f"  [bold]fix:[/] {exc.hint}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


@app.command()
def validate(suite: Path = typer.Argument(..., help="suite YAML"),
             data_dir: Optional[str] = typer.Option(None, "--data-dir", help="folder with the data set files")) -> None:
    """Check a suite completely (names, parameters, data, budgets) before any compute."""
    from robbench import api

    try:
        s = api.validate(suite, data_dir=data_dir)
    except RobbenchError as exc:
        _fail(exc)
        return
    from robbench.runner import Plan

    plan = Plan(s, data_dir=data_dir)
    out.print(f"[green]valid:[/] suite {s.name!r}: {len(plan.cells)} cells x {len(plan.sample_positions)} samples "
              f"= {len(plan.cells) * len(plan.sample_positions)} rows")


@app.command()
def run(suite: Path = typer.Argument(..., help="suite YAML"),
        out_dir: Optional[Path] = typer.Option(None, "--out", help="results directory (default results/SUITE_NAME)"),
        device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="samples per batch (does not change rows)"),
        fresh: bool = typer.Option(False, "--fresh", help="delete stored rows and recompute everything"),
        resume: bool = typer.Option(True, "--resume/--no-resume", help="skip rows already stored (default)"),
        data_dir: Optional[str] = typer.Option(None, "--data-dir", help="folder with the data set files"),
        zoo_dir: Optional[str] = typer.Option(None, "--zoo-dir", help="model cache (default $ROBBENCH_ZOO_DIR or the user cache)"),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads"),
        table_fmt: str = typer.Option("rich", "--table", help="print the summary as rich | md | csv | latex | json | none"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bars")) -> None:
    """Run a suite: every defense x attack x threat, one stored row per sample; prints the table."""
    from robbench import api

    try:
        report = api.run(suite, out=out_dir, device=device, batch_size=batch_size, fresh=fresh or not resume,
                         data_dir=data_dir, zoo_dir=zoo_dir, threads=threads, quiet=quiet)
    except RobbenchError as exc:
        _fail(exc)
        return
    err.print(f"{report.rows_written} rows computed, {report.rows_skipped} already stored, "
              f"{report.seconds:.1f}s -> {report.out}", highlight=False)
    if table_fmt != "none":
        _print_table(report.out, table_fmt, None)
    if report.failures:
        for f in report.failures:
            err.print(f"[bold red]failed:[/] {f}", highlight=False, soft_wrap=True)
        raise typer.Exit(3)


def _print_table(results: Path, fmt: str, scoring: Optional[str]) -> None:
    from robbench import api
    from robbench.formatting import render, to_rich

    summary = api.table(results, scoring=scoring)
    if fmt == "rich":
        from robbench.results import ResultsDir

        manifest = ResultsDir(results).read_manifest() or {}
        out.print(to_rich(summary, title=f"{manifest.get('suite_name', '')}: robust accuracy (%)"))
    else:
        sys.stdout.write(render(summary, fmt))


@app.command()
def table(results: Path = typer.Argument(..., help="results directory"),
          fmt: str = typer.Option("rich", "--format", "-f", help="rich | md | csv | latex | json"),
          scoring: Optional[str] = typer.Option(None, help="single | mean | majority | worst (stochastic defenses)")) -> None:
    """Summarise stored rows: accuracy with Wilson 95% CIs, reported numbers beside measured ones."""
    from robbench.formatting import FORMATS
    from robbench.summary import SCORINGS

    try:
        if fmt not in FORMATS:
            raise RobbenchError(f"unknown --format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
        if scoring is not None and scoring not in SCORINGS:
            raise RobbenchError(f"unknown --scoring {scoring!r}", hint=f"use one of {', '.join(SCORINGS)}")
        _print_table(results, fmt, scoring)
    except RobbenchError as exc:
        _fail(exc)


@app.command("ls")
def ls(kind: Optional[str] = typer.Argument(None, help="defenses | attacks | models | datasets")) -> None:
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
            out.print(f"  {name:<22} {desc}", highlight=False)


@zoo_app.command("train")
def zoo_train(name: str = typer.Argument(..., help="zoo recipe name (robbench zoo ls --recipes)"),
              dataset: Optional[str] = typer.Option(None, help="override the recipe's data set"),
              steps: Optional[int] = typer.Option(None, min=1, help="override the number of training steps"),
              zoo_dir: Optional[str] = typer.Option(None, "--zoo-dir"),
              data_dir: Optional[str] = typer.Option(None, "--data-dir")) -> None:
    """Train a zoo model deterministically and cache it with its manifest."""
    from robbench.zoo import get_recipe, train_recipe

    try:
        recipe = get_recipe(name).with_overrides(steps=steps, dataset=dataset)
        manifest = train_recipe(recipe, zoo_dir=zoo_dir, data_dir=data_dir)
    except RobbenchError as exc:
        _fail(exc)
        return
    out.print(f"trained {name}: {manifest['metrics']} sha256 {manifest['sha256'][:16]}...", highlight=False)


@zoo_app.command("ls")
def zoo_ls(zoo_dir: Optional[str] = typer.Option(None, "--zoo-dir"),
           show_recipes: bool = typer.Option(False, "--recipes", help="list trainable recipes instead")) -> None:
    """Show cached zoo models with their metrics (or the recipes)."""
    from robbench.zoo import ZooStore, recipes

    if show_recipes:
        for name, r in recipes().items():
            out.print(f"  {name:<26} {r.arch:<12} {r.dataset:<14} {r.description}", highlight=False)
        return
    store = ZooStore(zoo_dir)
    entries = store.entries()
    if not entries:
        out.print(f"no models cached in {store.root}")
    for e in entries:
        metrics = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in (e.get("metrics") or {}).items())
        out.print(f"  {e['key']:<30} {e.get('arch', '?'):<12} {e.get('dataset', '?'):<14} {metrics}", highlight=False)


@zoo_app.command("verify")
def zoo_verify(zoo_dir: Optional[str] = typer.Option(None, "--zoo-dir")) -> None:
    """Recheck the sha256 of every cached checkpoint; exit 2 when any fails."""
    from robbench.zoo import ZooStore

    rows = ZooStore(zoo_dir).verify()
    bad = 0
    for key, ok, detail in rows:
        bad += not ok
        out.print(f"  {'[green]ok[/]' if ok else '[red]BAD[/]'}  {key}  {detail}", highlight=False)
    if bad:
        err.print(f"[bold red]error:[/] {bad} checkpoint(s) failed verification", highlight=False)
        err.print("  [bold]fix:[/] delete them and retrain with `robbench zoo train NAME`", highlight=False)
        raise typer.Exit(2)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except RobbenchError as exc:  # errors raised outside a command's own handler
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        if exc.hint:
            err.print(f"  [bold]fix:[/] {exc.hint}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
