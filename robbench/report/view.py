"""What ``robbench table`` shows of a results directory: the summary, its title and notes, the checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from robbench.report.checks import format_checks
from robbench.report.reported import reported_from_suite
from robbench.report.summary import summarize
from robbench.results.load import load_results
from robbench.results.manifest import Manifest


@dataclass
class TableView:
    """A summary ready to render, with everything printed around it."""

    summary: pd.DataFrame
    manifest: Manifest
    title: str
    notes: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


def table_view(
    results_dir: str | Path,
    *,
    scoring: str | None = None,
    worst_case: bool = True,
    reported_from: str | Path | None = None,
) -> TableView:
    """Load and summarise ``results_dir`` (``reported_from``: take the reported numbers from that suite file)."""
    loaded = load_results(results_dir)
    manifest = reported_from_suite(loaded.manifest, reported_from) if reported_from else loaded.manifest
    summary = summarize(loaded.rows, manifest, scoring=scoring, worst_case=worst_case)
    return TableView(
        summary,
        manifest,
        f"{loaded.suite_name}: robust accuracy (%)",
        list(loaded.notes),
        format_checks(loaded.manifest.checks),
    )
