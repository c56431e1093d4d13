"""From rows to the tidy summary: accuracy per cell with Wilson CIs, scoring of stochastic
defenses, worst case over attacks, and the suite's reported numbers beside the measured ones.

Also the checked loader every reader of a results directory uses (:func:`load_results`): an
empty, corrupt or foreign directory is one clear :class:`~robbench.errors.ResultsError` (exit 2).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from robbench.errors import ResultsError
from robbench.suite.reported import _eps_key


def _source_text(src: dict[str, Any] | None) -> str:
    """``paper, table (note)``: shown as a numbered footnote beside the reported number."""
    src = src or {}
    text = ", ".join(str(v) for v in (src.get("paper"), src.get("table")) if v)
    return f"{text} ({src['note']})" if src.get("note") else text


def reported_entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The suite's ``reported:`` entries as plain dicts (old manifests lack the newer keys)."""
    return [dict(r) for r in ((manifest.get("suite") or {}).get("reported") or [])]


def _reported_lookup(
    entries: Iterable[dict[str, Any]],
) -> dict[tuple[str, str, str | None, float | None], dict[str, Any]]:
    table = {}
    for r in entries:
        if r.get("reported_only"):
            continue
        table[(r["defense"], r["attack"], r.get("norm"), _eps_key(r.get("eps")))] = r
    return table


def _attach_reported(line: dict[str, Any], rep: dict[str, Any] | None) -> None:
    if rep is None:
        return
    value = float(rep["accuracy"]) / 100.0
    line["reported"] = value
    line["reported_n"] = rep.get("n")
    line["source"] = _source_text(rep.get("source"))
    if line.get("n"):
        line["diff"] = line["accuracy"] - value
        line["reported_in_ci"] = bool(line["ci_low"] - 1e-12 <= value <= line["ci_high"] + 1e-12)


def reported_from_suite(manifest: dict[str, Any], suite_path: str | Path) -> dict[str, Any]:
    """A copy of ``manifest`` whose reported numbers come from the suite file ``suite_path``."""
    from robbench.suite.load import read_suite

    suite, _ = read_suite(suite_path)
    if suite.name != manifest.get("suite_name"):
        raise ResultsError(
            f"{suite_path} is suite {suite.name!r}, but the results are of suite {manifest.get('suite_name')!r}",
            hint="pass the suite file these results were run from",
        )
    out = json.loads(json.dumps(manifest))
    out["suite"]["reported"] = [r.model_dump(mode="json") for r in suite.reported]
    return out
