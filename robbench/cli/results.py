"""``robbench table``, ``compare`` and ``plot``: readers of a results directory."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from robbench.cli.app import _check_choice, _fail, app, err, out
from robbench.errors import RobbenchError


def _print_table(
    results: Path,
    fmt: str,
    scoring: str | None,
    *,
    pivot: bool = False,
    worst_case: bool = True,
    reported: Path | None = None,
) -> None:
    from robbench import api
    from robbench.report.formats.render import render, rich_renderable

    view = api.table_view(results, scoring=scoring, worst_case=worst_case, reported_from=reported)
    if fmt == "rich":
        out.print(
            rich_renderable(
                view.summary, view.title, pivot=pivot, manifest=view.manifest, notes=view.notes, width=out.width
            )
        )
    else:
        sys.stdout.write(
            render(
                view.summary, fmt, view.title, pivot=pivot, manifest=view.manifest, notes=view.notes if pivot else ()
            )
        )
        if not pivot:
            for note in view.notes:
                err.print(f"note: {note}", highlight=False, soft_wrap=True)
    _print_checks(view.checks, fmt)


def _print_checks(lines: list[str], fmt: str) -> None:
    """The run's checks (robbench.run.checks) under the table; on stderr for machine-readable formats."""
    if not lines:
        return
    if fmt in ("rich", "md"):
        out.print("\nchecks:" if fmt == "rich" else "\n**checks**\n", highlight=False)
        for line in lines:
            out.print(f"- {escape(line)}", highlight=False, soft_wrap=True)
    else:
        for line in lines:
            err.print(f"check: {escape(line)}", highlight=False, soft_wrap=True)


@app.command()
def table(
    results: Path = typer.Argument(..., help="results directory"),
    fmt: str = typer.Option("rich", "--format", "-f", help="rich | md | csv | latex | json"),
    scoring: str | None = typer.Option(None, help="single | mean | majority | worst (stochastic defenses)"),
    pivot: bool = typer.Option(False, "--pivot", help="the papers' layout: defenses x (attack, threat)"),
    worst_case: bool = typer.Option(True, "--worst-case/--no-worst-case", help="add the worst case over attacks"),
    reported: Path | None = typer.Option(
        None,
        "--reported",
        help="take the reported numbers from this suite file (the same suite, e.g. with numbers added after the run)",
    ),
) -> None:
    """Summarise stored rows: accuracy with Wilson 95% CIs, reported numbers beside measured ones."""
    from robbench.report.formats.render import FORMATS
    from robbench.results.scoring import SCORINGS

    try:
        _check_choice(fmt, FORMATS, "--format")
        _check_choice(scoring, SCORINGS, "--scoring")
        _print_table(results, fmt, scoring, pivot=pivot, worst_case=worst_case, reported=reported)
    except RobbenchError as exc:
        _fail(exc)


@app.command()
def compare(
    a: Path = typer.Argument(..., help="baseline results directory"),
    b: Path = typer.Argument(..., help="results directory to check against A"),
    tolerance: float | None = typer.Option(
        None, "--tolerance", help="exit 1 when any cell of B is worse than A by more than this many percentage points"
    ),
    fmt: str = typer.Option("rich", "--format", "-f", help="rich | md | csv | json"),
    scoring: str | None = typer.Option(None, help="single | mean | majority | worst (both sides)"),
    allow_missing: bool = typer.Option(
        False, "--allow-missing", help="with --tolerance: cells of A absent in B do not fail the check"
    ),
) -> None:
    """Compare two results directories sample by sample: accuracy change and exact McNemar p per cell."""
    from robbench import api
    from robbench.report.compare_render import render, to_rich
    from robbench.results.scoring import SCORINGS

    try:
        _check_choice(fmt, ("rich", "md", "csv", "json"), "--format")
        _check_choice(scoring, SCORINGS, "--scoring")
        result = api.compare(a, b, tolerance=tolerance, scoring=scoring, allow_missing=allow_missing)
    except RobbenchError as exc:
        _fail(exc)
        return
    if fmt == "rich":
        out.print(to_rich(result))
    else:
        sys.stdout.write(render(result, fmt))
        if fmt != "md":
            err.print(result.verdict(), highlight=False, soft_wrap=True)
    if not result.passed:
        raise typer.Exit(1)


@app.command()
def plot(
    results: Path = typer.Argument(..., help="results directory"),
    out_dir: Path | None = typer.Option(None, "--out", help="folder for the PNGs (default RESULTS/plots)"),
    kind: list[str] = typer.Option(["all"], "--kind", "-k", help="eps | tradeoff | trace | all (repeatable)"),
    scoring: str | None = typer.Option(None, help="single | mean | majority | worst (stochastic defenses)"),
) -> None:
    """Draw PNGs: robust accuracy vs eps, the clean/robust trade-off over a defense parameter, loss traces."""
    from robbench import api
    from robbench.results.scoring import SCORINGS

    try:
        _check_choice(scoring, SCORINGS, "--scoring")
        result = api.plot(results, out=out_dir, kinds=tuple(kind), scoring=scoring)
    except RobbenchError as exc:
        _fail(exc)
        return
    for path in result.paths:
        out.print(f"wrote {path}", highlight=False)
    for why in result.skipped:
        err.print(f"skipped {why}", highlight=False, soft_wrap=True)


@app.command()
def report(
    results: list[Path] = typer.Argument(..., help="results directories (several: also paired against the first)"),
    out_file: str = typer.Option("report.html", "--out", help="the HTML file to write"),
) -> None:
    """Write one self-contained HTML page: leaderboard per threat, every cell, checks, figures, what was run."""
    from robbench import api

    try:
        path = api.report(list(results), out_file)
    except RobbenchError as exc:
        _fail(exc)
        return
    out.print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)", highlight=False)
