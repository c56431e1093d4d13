"""One entry point for every format: a summary or pivot rendered as rich, markdown, CSV, LaTeX or JSON.

Human formats (rich, markdown, LaTeX) show percentages; machine formats (CSV, JSON) keep the
summary's fractions in [0, 1]. The rich output is laid out for an 80-100 column terminal: the tidy
table groups rows under a defense heading and uses short scoring labels with a legend; the pivot is
split into several tables when its columns do not fit the width.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from robbench.report.formats.latex import pivot_latex, to_latex
from robbench.report.formats.pivot_text import pivot_csv, pivot_json, pivot_markdown
from robbench.report.formats.rich_pivot import pivot_rich
from robbench.report.formats.rich_tidy import to_rich
from robbench.report.formats.tidy import to_csv, to_json, to_markdown
from robbench.report.pivot import build_pivot
from robbench.results.manifest import Manifest

FORMATS = ("rich", "md", "csv", "latex", "json")


# ---- entry points --------------------------------------------------------------------------------
def render(
    summary: pd.DataFrame,
    fmt: str,
    title: str | None = None,
    *,
    pivot: bool = False,
    manifest: Manifest | None = None,
    notes: Sequence[str] = (),
) -> str:
    """Any non-rich format as text (``pivot`` = the papers' layout)."""
    if fmt not in FORMATS or fmt == "rich":
        raise ValueError(f"unknown text format {fmt!r}; use one of {FORMATS[1:]}")
    if pivot:
        p = build_pivot(summary, manifest, title=title or "")
        p.notes += list(notes)
        return {"md": pivot_markdown, "csv": pivot_csv, "json": pivot_json}.get(fmt, lambda q: pivot_latex(q, title))(p)
    if fmt == "md":
        text = to_markdown(summary)
        return text + "".join(f"\nNote: {n}\n" for n in notes)
    if fmt == "csv":
        return to_csv(summary)
    if fmt == "latex":
        return to_latex(summary, caption=title)
    return to_json(summary)


def rich_renderable(
    summary: pd.DataFrame,
    title: str | None = None,
    *,
    pivot: bool = False,
    manifest: Manifest | None = None,
    notes: Sequence[str] = (),
    width: int = 100,
) -> Any:
    """The rich version of :func:`render` (a renderable for ``Console.print``)."""
    if pivot:
        p = build_pivot(summary, manifest, title=title or "")
        p.notes += list(notes)
        return pivot_rich(p, width=width)
    return to_rich(summary, title=title, notes=notes, width=width)


__all__ = [
    "FORMATS",
    "pivot_csv",
    "pivot_json",
    "pivot_latex",
    "pivot_markdown",
    "pivot_rich",
    "render",
    "rich_renderable",
    "to_csv",
    "to_json",
    "to_latex",
    "to_markdown",
    "to_rich",
]
