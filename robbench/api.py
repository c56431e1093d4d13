"""The public Python API; every CLI command is one call here with the same parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # keep `robbench ls` free of torch-heavy imports
    import pandas as pd

    from robbench.runner import RunReport
    from robbench.suite import Suite


def validate(suite_path: str | Path, *, data_dir: str | None = None) -> "Suite":
    """Check a suite completely (names, parameters, data, budgets, models) without computing."""
    from robbench.suite import load_suite

    return load_suite(suite_path, data_dir=data_dir)


def run(suite_path: str | Path, **kwargs: Any) -> "RunReport":
    """Run a suite (resuming by default). See :func:`robbench.runner.run_suite` for the options."""
    from robbench.runner import run_suite

    return run_suite(suite_path, **kwargs)


def table(results_dir: str | Path, *, scoring: str | None = None, worst_case: bool = True) -> "pd.DataFrame":
    """The tidy summary of a results directory."""
    from robbench.results import open_results
    from robbench.summary import summarize

    _, manifest, df = open_results(results_dir)
    return summarize(df, manifest, scoring=scoring, worst_case=worst_case)


def list_components(kind: str | None = None) -> dict[str, list[tuple[str, str]]]:
    """Registered names with a one-line description, per kind (no heavy imports)."""
    from robbench.registry import REGISTRIES, registry

    kinds = [kind] if kind else list(REGISTRIES)
    return {k: [(n, registry(k).describe(n)) for n in registry(k).names()] for k in kinds}


__all__ = ["list_components", "run", "table", "validate"]
