"""The run's false-robustness checks (:mod:`robbench.run.checks`) as lines under a table."""

from __future__ import annotations

from robbench.results.manifest import CheckRecord


def flags(checks: list[CheckRecord]) -> list[CheckRecord]:
    """The records that need the reader's attention."""
    return [c for c in checks if c.status == "flag"]


def format_checks(checks: list[CheckRecord] | None) -> list[str]:
    """Lines for the table's footer: every flag, then a one-line count of the passed checks."""
    if not checks:
        return []
    lines = [f"FLAG {c.check}: {c.subject}: {c.message}" for c in flags(checks)]
    passed = [c for c in checks if c.status == "ok"]
    kinds = sorted({c.check for c in passed})
    if passed:
        lines.append(f"ok: {len(passed)} check(s) passed ({', '.join(kinds)})")
    return lines
