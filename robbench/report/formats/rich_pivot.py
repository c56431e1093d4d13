"""The pivot as a rich table, split into column chunks that fit the terminal."""

from __future__ import annotations

from typing import Any

from robbench.report.formats.labels import SUPERSCRIPT, legend, short_scoring
from robbench.report.formats.numbers import ci_text, diff_pts, pct, rep_pct
from robbench.report.pivot import Pivot, PivotCell
from robbench.suite.reported import WORST


def _cell_rich(cell: PivotCell | None, pivot: Pivot):  # type: ignore[no-untyped-def]
    from rich.text import Text

    t = Text(justify="right", no_wrap=True)
    if cell is None:
        return t
    if cell.measured:
        t.append(pct(cell.accuracy), style="bold")
        if cell.mark:
            t.append(f" {cell.mark}", style="yellow")
        t.append("\n" + ci_text(cell.ci_low, cell.ci_high, sep=","), style="dim")
    else:
        t.append("-")
    if cell.has_reported:
        ref = pivot.source_ref(cell.source)
        t.append("\n" + rep_pct(cell.reported) + (str(ref).translate(SUPERSCRIPT) if ref else ""), style="cyan")
        if cell.measured:
            t.append(f" {diff_pts(cell.diff)}", style="green" if cell.reported_in_ci else "red")
    return t


def _plain_width(cell: PivotCell | None, pivot: Pivot) -> int:
    return max((len(line) for line in _cell_rich(cell, pivot).plain.splitlines()), default=0)


def _balanced_chunks(widths: list[int], room: int) -> list[list[int]]:
    """Split column indices into the fewest contiguous chunks that fit ``room``, sizes balanced."""
    n = len(widths)
    for k in range(1, n + 1):
        size = -(-n // k)
        chunks = [list(range(i, min(i + size, n))) for i in range(0, n, size)]
        if all(sum(widths[i] for i in c) <= room or len(c) == 1 for c in chunks):
            return chunks
    return [[i] for i in range(n)]


def pivot_rich(pivot: Pivot, width: int = 100):  # type: ignore[no-untyped-def]
    """Rich tables (split by columns to fit ``width``) with the legend and sources below."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def meta(r: Any) -> str:
        modes = ", ".join(short_scoring(m) for m in r.scoring_label.split(", ") if m)
        return " · ".join(x for x in (r.n_label, modes) if x)

    label_w = min(28, max([len(r.defense) for r in pivot.rows] + [len(meta(r)) for r in pivot.rows] + [7]))
    widths = []
    for c in pivot.columns:
        head = max(len("worst case" if c.attack == WORST else c.attack), len(c.threat))
        widths.append(max([head] + [_plain_width(r.cells.get(c.key), pivot) for r in pivot.rows]) + 3)
    chunks = _balanced_chunks(widths, width - 1 - (label_w + 2))
    tables = []
    for j, chunk in enumerate(chunks):
        title = pivot.title or None
        if len(chunks) > 1:
            title = f"{title} ({j + 1}/{len(chunks)})" if j == 0 and title else f"({j + 1}/{len(chunks)})"
        t = Table(title=title, box=box.SIMPLE_HEAD, show_lines=True, padding=(0, 1), pad_edge=False)
        t.add_column("defense", no_wrap=False, min_width=min(label_w, 12), max_width=label_w, overflow="fold")
        for i in chunk:
            c = pivot.columns[i]
            t.add_column(
                ("worst case" if c.attack == WORST else c.attack) + "\n" + c.threat, justify="right", no_wrap=True
            )
        for r in pivot.rows:
            label = Text(r.defense, style="bold")
            if meta(r):
                label.append("\n" + meta(r), style="dim")
            t.add_row(label, *[_cell_rich(r.cells.get(pivot.columns[i].key), pivot) for i in chunk])
        tables.append(t)
    labels = [s for r in pivot.rows for s in r.scoring_label.split(", ")]
    labels += [c.scoring for r in pivot.rows for c in r.cells.values()]
    foot = ["cells: measured accuracy % with its 95% Wilson CI below"]
    if pivot.has_reported:
        foot.append(
            "cyan: reported % (superscript: source) and measured - reported in points, green when the "
            "reported number lies inside the 95% CI, red outside"
        )
    foot += legend(labels)
    foot += [f"{i}. {s}" for i, s in enumerate(pivot.sources, 1)]
    foot += [f"note: {n}" for n in pivot.notes]
    return Group(*tables, *(Text(line, style="dim") for line in foot))
