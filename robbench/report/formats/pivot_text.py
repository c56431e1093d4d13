"""The pivot as markdown, CSV and JSON."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from robbench.report.formats.numbers import ci_text, diff_pts, pct, rep_pct
from robbench.report.pivot import Pivot, PivotCell


# ---- pivot ---------------------------------------------------------------------------------------
def _cell_md(cell: PivotCell | None, pivot: Pivot) -> str:
    if cell is None:
        return ""
    parts = []
    if cell.measured:
        parts.append(
            f"{pct(cell.accuracy)} {ci_text(cell.ci_low, cell.ci_high)}" + (f" {cell.mark}" if cell.mark else "")
        )
    elif cell.has_reported:
        parts.append("-")
    if cell.has_reported:
        ref = pivot.source_ref(cell.source)
        rep = f"paper {rep_pct(cell.reported)}" + (f"[{ref}]" if ref else "")
        if cell.reported_n:
            rep += f" n={cell.reported_n}"
        if cell.measured:
            rep += f", {diff_pts(cell.diff)}"
        parts.append(f"({rep})")
    return " ".join(parts)


def pivot_markdown(pivot: Pivot) -> str:
    cols = pivot.columns
    head = ["defense", "n", "scoring", *[c.key for c in cols]]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * len(cols)) + "|"]
    for r in pivot.rows:
        cells = [
            r.defense + (" (reported)" if r.reported_only else ""),
            r.n_label,
            r.scoring_label,
            *[_cell_md(r.cells.get(c.key), pivot) for c in cols],
        ]
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
    foot = [
        "",
        "Cells: measured accuracy % [95% Wilson CI]; (paper = reported %, [k] its source, then measured - "
        "reported in points).",
    ]
    foot += [f"[{i}] {s}" for i, s in enumerate(pivot.sources, 1)]
    foot += [f"Note: {n}" for n in pivot.notes]
    return "\n".join(lines + foot) + "\n"


def pivot_csv(pivot: Pivot) -> str:
    """One line per defense; per column: accuracy, ci_low, ci_high, n, reported, diff (fractions)."""
    records = []
    for r in pivot.rows:
        rec: dict[str, Any] = {"defense": r.defense, "reported_only": r.reported_only, "scoring": r.scoring_label}
        for c in pivot.columns:
            cell = r.cells.get(c.key) or PivotCell()
            d = cell.as_dict()
            for k in ("accuracy", "ci_low", "ci_high", "n", "reported", "diff", "source"):
                rec[f"{c.key} | {k}"] = d[k]
        records.append(rec)
    return str(pd.DataFrame(records).to_csv(index=False))


def pivot_json(pivot: Pivot) -> str:
    return json.dumps(pivot.to_dict(), indent=2, allow_nan=False) + "\n"
