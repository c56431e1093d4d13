"""The public Python API; every CLI command is one call here with the same parameters."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # keep `robbench ls` free of torch-heavy imports
    import pandas as pd

    from robbench.report.compare import Comparison
    from robbench.report.pivot import Pivot
    from robbench.report.plot.common import PlotResult
    from robbench.report.view import TableView
    from robbench.run.plan import Plan
    from robbench.run.session import RunReport


def validate(suite_path: str | Path, *, data_dir: str | None = None, zoo_dir: str | None = None) -> Plan:
    """Check a suite completely (names, parameters, data, budgets, models) and plan it, without computing."""
    from robbench.run.validate import validate_file

    return validate_file(suite_path, data_dir=data_dir, zoo_dir=zoo_dir)


def run(suite_path: str | Path, **kwargs: Any) -> RunReport:
    """Run a suite (resuming by default). See :func:`robbench.run.session.run_suite` for the options."""
    from robbench.run.session import run_suite

    return run_suite(suite_path, **kwargs)


def table_view(
    results_dir: str | Path,
    *,
    scoring: str | None = None,
    worst_case: bool = True,
    reported_from: str | Path | None = None,
) -> TableView:
    """Everything ``robbench table`` prints: summary, title, notes and check lines."""
    from robbench.report.view import table_view as _table_view

    return _table_view(results_dir, scoring=scoring, worst_case=worst_case, reported_from=reported_from)


def table(
    results_dir: str | Path,
    *,
    scoring: str | None = None,
    worst_case: bool = True,
    reported_from: str | Path | None = None,
) -> pd.DataFrame:
    """The tidy summary of a results directory (``reported_from``: take reported numbers from that suite file)."""
    return table_view(results_dir, scoring=scoring, worst_case=worst_case, reported_from=reported_from).summary


def pivot(
    results_dir: str | Path,
    *,
    scoring: str | None = None,
    worst_case: bool = True,
    reported_from: str | Path | None = None,
) -> Pivot:
    """The papers' layout: defenses x (attack, threat), measured with CI beside reported numbers."""
    from robbench.report.pivot import build_pivot

    view = table_view(results_dir, scoring=scoring, worst_case=worst_case, reported_from=reported_from)
    p = build_pivot(view.summary, view.manifest, title=view.manifest.suite_name)
    p.notes = view.notes
    return p


def compare(
    a: str | Path,
    b: str | Path,
    *,
    tolerance: float | None = None,
    scoring: str | None = None,
    allow_missing: bool = False,
) -> Comparison:
    """Paired comparison of results B against baseline A. See :func:`robbench.report.compare.compare`."""
    from robbench.report.compare import compare as _compare

    return _compare(a, b, tolerance=tolerance, scoring=scoring, allow_missing=allow_missing)


def report(results_dirs: list[str | Path], out: str | Path) -> Path:
    """One self-contained HTML page for these results folders. See :mod:`robbench.report.html.page`."""
    from robbench.report.html.page import write_report

    return write_report(results_dirs, out)


def plot(
    results_dir: str | Path,
    *,
    out: str | Path | None = None,
    kinds: tuple[str, ...] = ("all",),
    scoring: str | None = None,
) -> PlotResult:
    """PNG figures of a results directory (paths and skipped kinds). See :func:`robbench.report.plot.results.plot_results`."""
    from robbench.report.plot.results import plot_results

    return plot_results(results_dir, out=out, kinds=kinds, scoring=scoring)


def list_components(kind: str | None = None) -> dict[str, list[tuple[str, str]]]:
    """Registered names with a one-line description, per kind (no heavy imports)."""
    from robbench.core.registry import REGISTRIES, registry

    kinds = [kind] if kind else list(REGISTRIES)
    return {k: [(n, registry(k).describe(n)) for n in registry(k).names()] for k in kinds}


__all__ = ["compare", "list_components", "pivot", "plot", "run", "table", "table_view", "validate"]
