"""The tidy summary as a rich table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from robbench.report.formats.labels import EVALUATION_LEGEND, SUPERSCRIPT, UB_DAGGER, WEAK_SIGN, legend, short_scoring
from robbench.report.formats.numbers import ci_text, rep_pct
from robbench.report.formats.tidy import tidy_cells
from robbench.report.summary import is_missing
from robbench.suite.reported import WORST


@dataclass
class _Layout:
    """Which optional columns the tidy rich table shows."""

    ns: list[int]
    show_n: bool
    show_clean: bool
    has_rep: bool
    sources: list[str]
    #: a protocol column (wide terminals); else the protocols are listed under the table
    show_protocol: bool = True


def _layout(summary: pd.DataFrame, width: int = 100) -> _Layout:
    has_rep = "reported" in summary and summary["reported"].notna().any()
    sources = [s for s in dict.fromkeys(summary["source"]) if isinstance(s, str) and s] if has_rep else []
    measured = summary[summary["n"] > 0]
    # columns that carry information only when they vary: n, and the clean accuracy of each cell
    # (for a deterministic defense it is the clean row's accuracy in every cell)
    ns = sorted(set(measured["n"].astype(int)))
    show_clean = (
        bool((measured.groupby("defense")["clean_accuracy"].nunique() > 1).any())
        or not (measured["norm"] == "none").any()
    )
    return _Layout(ns, len(ns) > 1, show_clean, bool(has_rep), sources, show_protocol=width >= 100)


def _table(summary: pd.DataFrame, title: str | None, lay: _Layout) -> Any:
    from rich import box
    from rich.table import Table

    first_w = max(
        [len(str(a)) + 2 for a in summary["attack"]] + [min(22, max(len(str(d)) for d in summary["defense"]))]
    )
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, collapse_padding=True)
    table.add_column("attack", max_width=first_w, overflow="fold")
    table.add_column("threat", no_wrap=True)
    if lay.show_n:
        table.add_column("n", justify="right", no_wrap=True)
    table.add_column("acc %", justify="right", no_wrap=True)
    table.add_column("95% CI", no_wrap=True)
    if lay.show_clean:
        table.add_column("clean", justify="right", no_wrap=True)
    if lay.show_protocol:
        table.add_column("protocol", max_width=26, overflow="fold")
    table.add_column("scoring", no_wrap=True)
    if lay.has_rep:
        table.add_column("paper", justify="right", no_wrap=True)
        table.add_column("diff", justify="right", no_wrap=True)
    return table


def _cells(row: pd.Series, lay: _Layout) -> list[Any]:
    from rich.text import Text

    c = tidy_cells(row)
    worst = row["attack"] == WORST
    cells: list[Any] = [
        Text("  " + c["attack"], style="italic" if worst else "", no_wrap=True, overflow="ellipsis"),
        c["threat"],
    ]
    if lay.show_n:
        cells.append(c["n"])
    acc = Text(c["accuracy"], style="bold" if worst else "")
    if c["evaluation"].startswith("upper bound"):
        acc.append(UB_DAGGER, style="yellow")
    elif c["evaluation"] == "adaptive (weak)":
        acc.append(WEAK_SIGN, style="yellow")
    cells += [acc, ci_text(row["ci_low"], row["ci_high"], sep=",")]
    if lay.show_clean:
        cells.append(c["clean_accuracy"])
    if lay.show_protocol:
        cells.append(c["protocol"])
    cells.append(short_scoring(c["scoring"]))
    if lay.has_rep:
        rep = rep_pct(row.get("reported"))
        ref = (lay.sources.index(row["source"]) + 1) if row.get("source") in lay.sources else None
        cells.append(f"{rep}{str(ref).translate(SUPERSCRIPT)}" if rep and ref else rep)
        style = "" if is_missing(row.get("diff")) else ("green" if row.get("reported_in_ci") else "red")
        cells.append(Text(c["diff"], style=style))
    return cells


def _footer(summary: pd.DataFrame, lay: _Layout, notes: Sequence[str]) -> list[str]:
    foot = [] if lay.show_n or not lay.ns else [f"n = {lay.ns[0]} samples in every cell"]
    if not lay.show_clean:
        foot.append("clean accuracy: the clean row of each defense")
    if not lay.show_protocol:  # a narrow terminal: each attack's protocol once, under the table
        seen = {
            f"{c['attack']}: {c['protocol']}" for c in (tidy_cells(r) for _, r in summary.iterrows()) if c["protocol"]
        }
        if seen:
            foot.append("protocol (gradient, randomness, EoT): " + "; ".join(sorted(seen)))
    foot += legend(list(summary["scoring"].astype(str)))
    foot.append(EVALUATION_LEGEND)
    if lay.has_rep:
        foot.append(
            "paper = reported number (superscript: source); diff = measured - reported, in points, "
            "green when the reported number lies inside the 95% CI, red outside"
        )
        foot += [f"{i}. {s}" for i, s in enumerate(lay.sources, 1)]
    return foot + [f"note: {n}" for n in notes]


def to_rich(summary: pd.DataFrame, title: str | None = None, notes: Sequence[str] = (), width: int = 100) -> Any:
    """The tidy summary for a terminal: rows grouped under a bold defense line, a legend below; each attack's
    protocol in a column when ``width`` (the terminal's) is 100 or more, else listed under the table."""
    from rich.console import Group
    from rich.text import Text

    lay = _layout(summary, width)
    table = _table(summary, title, lay)
    previous = None
    for _, row in summary.iterrows():
        if row["defense"] != previous:
            if previous is not None:
                table.add_section()
            table.add_row(Text(str(row["defense"]), style="bold", overflow="fold"))
            previous = row["defense"]
        table.add_row(*_cells(row, lay))
    return Group(table, *(Text(line, style="dim") for line in _footer(summary, lay, notes)))
