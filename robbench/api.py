"""The public Python API; every CLI command is one call here with the same parameters."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # keep `robbench ls` free of torch-heavy imports
    import pandas as pd

    from robbench.report.compare import Comparison
    from robbench.report.pivot import Pivot
    from robbench.report.plot.common import PlotResult
    from robbench.run.session import RunReport
    from robbench.suite.model import Suite


def validate(suite_path: str | Path, *, data_dir: str | None = None) -> Suite:
    """Check a suite completely (names, parameters, data, budgets, models) without computing."""
    from robbench.suite.check import load_suite

    return load_suite(suite_path, data_dir=data_dir)


def run(suite_path: str | Path, **kwargs: Any) -> RunReport:
    """Run a suite (resuming by default). See :func:`robbench.run.session.run_suite` for the options."""
    from robbench.run.session import run_suite

    return run_suite(suite_path, **kwargs)


def table(
    results_dir: str | Path,
    *,
    scoring: str | None = None,
    worst_case: bool = True,
    reported_from: str | Path | None = None,
) -> pd.DataFrame:
    """The tidy summary of a results directory (``reported_from``: take reported numbers from that suite file)."""
    from robbench.report.reported import reported_from_suite
    from robbench.report.summary import summarize
    from robbench.results.load import load_results

    loaded = load_results(results_dir)
    manifest = reported_from_suite(loaded.manifest, reported_from) if reported_from else loaded.manifest
    return summarize(loaded.rows, manifest, scoring=scoring, worst_case=worst_case)


def pivot(
    results_dir: str | Path,
    *,
    scoring: str | None = None,
    worst_case: bool = True,
    reported_from: str | Path | None = None,
) -> Pivot:
    """The papers' layout: defenses x (attack, threat), measured with CI beside reported numbers."""
    from robbench.report.pivot import build_pivot
    from robbench.report.reported import reported_from_suite
    from robbench.report.summary import summarize
    from robbench.results.load import load_results

    loaded = load_results(results_dir)
    manifest = reported_from_suite(loaded.manifest, reported_from) if reported_from else loaded.manifest
    p = build_pivot(
        summarize(loaded.rows, manifest, scoring=scoring, worst_case=worst_case), manifest, title=loaded.suite_name
    )
    p.notes = loaded.notes
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


__all__ = ["compare", "list_components", "pivot", "plot", "run", "table", "validate"]
