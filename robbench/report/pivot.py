"""The papers' layout: one row per defense (or per setting of one defense), one column per attack x
threat, each cell the measured accuracy with its 95% CI and the reported number beside it.

Built from the tidy summary (:func:`robbench.report.summary.summarize`); rendered by
:mod:`robbench.report.formats`. Reported-only methods (numbers quoted from papers for methods the suite
does not run) get their own rows with an empty measured part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from robbench.core.budget import NORMS, threat_label
from robbench.report.summary import is_missing
from robbench.results.manifest import Manifest
from robbench.suite.reported import WORST

#: the pivot's mark on a cell that is only an upper bound, and its note
UB_MARK = "ub"
UB_NOTE = "ub: upper bound only (gray-box or transfer attacks, the defense itself not attacked), not a robust accuracy"
#: the mark on a cell whose attacks through the defense are all below robbench's strength floor, and its note
WEAK_MARK = "weak"
WEAK_NOTE = (
    "weak: adaptive (weak): attacked through the defense only below the strength floor (fewer than 10 gradient "
    "steps or 1000 queries, or single-draw gradients on a randomised defense): likely above the true robustness"
)


@dataclass(frozen=True)
class Column:
    """One attack at one threat."""

    attack: str
    norm: str
    eps: float
    eps_label: str

    @property
    def key(self) -> str:
        return f"{self.attack} {threat_label(self.norm, self.eps_label)}".strip()

    @property
    def threat(self) -> str:
        return threat_label(self.norm, self.eps_label)


@dataclass
class PivotCell:
    """Measured accuracy (fractions) with CI, and the reported number when the suite gives one."""

    accuracy: float = float("nan")
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    n: int = 0
    scoring: str = ""
    reported: float = float("nan")
    diff: float = float("nan")
    reported_in_ci: bool | None = None
    reported_n: int | None = None
    source: str = ""
    #: adaptive | adaptive (weak) | upper bound (...) | clean | "" (:func:`robbench.report.summary.evaluation_label`)
    evaluation: str = ""

    @property
    def upper_bound(self) -> bool:
        """True when no attack behind this number attacked the defense itself."""
        return self.evaluation.startswith("upper bound")

    @property
    def weak(self) -> bool:
        """True when the adaptive attacks behind this number are all below the strength floor."""
        return self.evaluation == "adaptive (weak)"

    @property
    def mark(self) -> str:
        """``ub``, ``weak`` or empty."""
        return UB_MARK if self.upper_bound else WEAK_MARK if self.weak else ""

    @property
    def measured(self) -> bool:
        return self.n > 0 and not is_missing(self.accuracy)

    @property
    def has_reported(self) -> bool:
        return not is_missing(self.reported)

    def as_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            return None if is_missing(v) else v

        return {
            "accuracy": clean(self.accuracy),
            "ci_low": clean(self.ci_low),
            "ci_high": clean(self.ci_high),
            "n": self.n,
            "evaluation": self.evaluation,
            "scoring": self.scoring,
            "reported": clean(self.reported),
            "diff": clean(self.diff),
            "reported_in_ci": self.reported_in_ci,
            "reported_n": self.reported_n,
            "source": self.source,
        }


@dataclass
class Row:
    defense: str
    reported_only: bool
    cells: dict[str, PivotCell] = field(default_factory=dict)

    @property
    def n_label(self) -> str:
        ns = sorted({c.n for c in self.cells.values() if c.measured})
        return "" if not ns else (f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}-{ns[-1]}")

    @property
    def scoring_label(self) -> str:
        """The row's scoring modes (worst-case columns excluded), e.g. ``det-seed, worst of 4 draws``."""
        if self.reported_only:
            return "reported only"
        modes = [c.scoring for c in self.cells.values() if c.measured and not c.scoring.startswith("min over")]
        return ", ".join(dict.fromkeys(modes))


@dataclass
class Pivot:
    """Rows x columns of cells, and the numbered sources of the reported numbers."""

    columns: list[Column]
    rows: list[Row]
    sources: list[str]
    title: str = ""
    notes: list[str] = field(default_factory=list)

    def source_ref(self, source: str) -> int | None:
        return self.sources.index(source) + 1 if source in self.sources else None

    @property
    def has_reported(self) -> bool:
        return any(c.has_reported for r in self.rows for c in r.cells.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "columns": [
                {"key": c.key, "attack": c.attack, "norm": c.norm, "eps": c.eps, "eps_label": c.eps_label}
                for c in self.columns
            ],
            "rows": [
                {
                    "defense": r.defense,
                    "reported_only": r.reported_only,
                    "n": r.n_label,
                    "scoring": r.scoring_label,
                    "cells": {k: c.as_dict() for k, c in r.cells.items()},
                }
                for r in self.rows
            ],
            "sources": self.sources,
            "notes": self.notes,
        }


def build_pivot(
    summary: pd.DataFrame, manifest: Manifest | None = None, *, title: str = "", worst_case: bool = True
) -> Pivot:
    """Pivot a tidy summary: rows = defenses in suite order, columns = attacks x threats."""
    attack_order = {a.id: i for i, a in enumerate(manifest.suite.attacks)} if manifest is not None else {}
    norm_order = {n: i for i, n in enumerate(("none", *NORMS))}
    columns: dict[str, Column] = {}
    rows: dict[str, Row] = {}
    sources: list[str] = []
    for _, r in summary.iterrows():
        if r["attack"] == WORST and not worst_case:
            continue
        col = Column(str(r["attack"]), str(r["norm"]), float(r["eps"]), str(r["eps_label"]))
        columns.setdefault(col.key, col)
        row = rows.setdefault(str(r["defense"]), Row(str(r["defense"]), bool(r.get("reported_only", False))))
        src = r.get("source") if isinstance(r.get("source"), str) else ""
        if src and src not in sources:
            sources.append(src)
        rep_n = r.get("reported_n")
        row.cells[col.key] = PivotCell(
            accuracy=float(r["accuracy"]),
            ci_low=float(r["ci_low"]),
            ci_high=float(r["ci_high"]),
            n=int(r["n"]),
            scoring=str(r["scoring"]),
            reported=float(r["reported"]) if not is_missing(r.get("reported")) else float("nan"),
            diff=float(r["diff"]) if not is_missing(r.get("diff")) else float("nan"),
            reported_in_ci=None if is_missing(r.get("reported_in_ci")) else bool(r["reported_in_ci"]),
            reported_n=None if rep_n is None or is_missing(rep_n) else int(rep_n),
            source=src or "",
            evaluation=str(r.get("evaluation") or ""),
        )
    ordered = sorted(
        columns.values(),
        key=lambda c: (c.attack == WORST, attack_order.get(c.attack, 10**6), norm_order.get(c.norm, 9), c.eps),
    )
    pivot = Pivot(ordered, list(rows.values()), sources, title=title)
    if any(c.upper_bound for r in pivot.rows for c in r.cells.values()):
        pivot.notes.append(UB_NOTE)
    if any(c.weak for r in pivot.rows for c in r.cells.values()):
        pivot.notes.append(WEAK_NOTE)
    return pivot
