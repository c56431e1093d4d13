"""Published numbers beside measured ones: attaching a suite's ``reported:`` entries to summary lines,
and taking them from a suite file edited after the run (``robbench table --reported SUITE``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robbench.errors import ResultsError
from robbench.results.manifest import Manifest
from robbench.suite.model import Reported

ReportedKey = tuple[str, str, str | None, float | None]


def reported_lookup(entries: list[Reported]) -> dict[ReportedKey, Reported]:
    """The entries beside measured cells, by (defense, attack, norm, eps key)."""
    return {r.key: r for r in entries if not r.reported_only}


def attach_reported(line: dict[str, Any], rep: Reported | None) -> None:
    """Add ``reported``, ``reported_n``, ``source`` and (when measured) ``diff`` and ``reported_in_ci``."""
    if rep is None:
        return
    value = rep.accuracy / 100.0
    line["reported"] = value
    line["reported_n"] = rep.n
    line["source"] = rep.source_text
    if line.get("n"):
        line["diff"] = line["accuracy"] - value
        line["reported_in_ci"] = bool(line["ci_low"] - 1e-12 <= value <= line["ci_high"] + 1e-12)


def reported_from_suite(manifest: Manifest, suite_path: str | Path) -> Manifest:
    """A copy of ``manifest`` whose reported numbers come from the suite file ``suite_path``."""
    from robbench.suite.load import read_suite

    suite, _ = read_suite(suite_path)
    if suite.name != manifest.suite_name:
        raise ResultsError(
            f"{suite_path} is suite {suite.name!r}, but the results are of suite {manifest.suite_name!r}",
            hint="pass the suite file these results were run from",
        )
    new_suite = manifest.suite.model_copy(update={"reported": list(suite.reported)})
    return manifest.model_copy(update={"suite": new_suite})
