"""Render a summary, tidy or pivoted, as rich, markdown, CSV, LaTeX (booktabs) or JSON.

Human formats (rich, markdown, LaTeX) show percentages; machine formats (CSV, JSON) keep the
summary's fractions in [0, 1]. The rich output is laid out for an 80-100 column terminal: the tidy
table groups rows under a defense heading and uses short scoring labels with a legend; the pivot is
split into several tables when its columns do not fit the width.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from robbench.pivot import Cell, Pivot, build_pivot, threat_label
from robbench.summary import WORST, is_missing

FORMATS = ("rich", "md", "csv", "latex", "json")
_SUP = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


# ---- numbers -------------------------------------------------------------------------------------
def pct(v: object) -> str:
    """A fraction as a percentage with one decimal; empty for a missing value."""
    return "" if is_missing(v) else f"{100 * float(v):.1f}"  # type: ignore[arg-type]


def rep_pct(v: object) -> str:
    """A reported fraction as the paper wrote it (up to two decimals, no trailing zeros)."""
    if is_missing(v):
        return ""
    text = f"{100 * float(v):.2f}".rstrip("0").rstrip(".")  # type: ignore[arg-type]
    return text or "0"


def diff_pts(v: object) -> str:
    return "" if is_missing(v) else f"{100 * float(v):+.1f}"  # type: ignore[arg-type]


def ci_text(lo: object, hi: object, sep: str = ", ") -> str:
    return "" if is_missing(lo) or is_missing(hi) else f"[{pct(lo)}{sep}{pct(hi)}]"


def short_scoring(label: str) -> str:
    """Compact scoring labels for narrow terminals (expanded in the legend)."""
    if label.startswith("min over "):
        return f"min/{label.split()[2]} atk"
    for word, short in (("worst", "worst"), ("mean", "mean"), ("majority", "maj"), ("first", "first")):
        if label.startswith(f"{word} of "):
            return f"{short}/{label.split()[2]}"
    return {"deterministic": "determ.", "single draw": "1 draw", "reported only": "paper"}.get(label, label)


_LEGEND = {
    "deterministic": "determ. = deterministic defense, one forward",
    "det-seed": "det-seed = stochastic defense with its seeds fixed and known to the attacker (one draw)",
    "single draw": "1 draw = stochastic defense judged on one fresh draw",
    "worst": "worst/m = robust only if correct on all m fresh draws",
    "mean": "mean/m = average correctness over m fresh draws",
    "majority": "maj/m = majority vote over m fresh draws",
    "first": "first/m = the first of m fresh draws",
    "min over": "min/k atk = per sample, the worst case over k attacks",
}


def legend(labels: Sequence[str]) -> list[str]:
    """Explanations of the scoring labels that occur in a table."""
    out = []
    for key, text in _LEGEND.items():
        if any(lbl == key or lbl.startswith(f"{key} ") for lbl in labels) and text not in out:
            out.append(text)
    return out


def norm_label(norm: str) -> str:
    return threat_label(norm, "").strip()


def _threat(row: pd.Series) -> str:
    return threat_label(str(row["norm"]), str(row["eps_label"]))


# ---- tidy ----------------------------------------------------------------------------------------
_TIDY = [("defense", "defense"), ("attack", "attack"), ("threat", "threat"), ("n", "n"), ("accuracy", "acc %"),
         ("ci", "95% CI"), ("clean_accuracy", "clean %"), ("scoring", "scoring"), ("reported", "reported %"),
         ("diff", "diff"), ("source", "source")]


def _tidy_cells(row: pd.Series) -> dict[str, str]:
    only = bool(row.get("reported_only", False)) or int(row["n"]) == 0
    rep = rep_pct(row.get("reported"))
    if rep and not is_missing(row.get("reported_n")):
        rep += f" (n={int(row['reported_n'])})"
    return {
        "defense": str(row["defense"]), "attack": str(row["attack"]), "threat": _threat(row),
        "n": "" if only else str(row["n"]), "accuracy": "-" if only else pct(row["accuracy"]),
        "ci": ci_text(row["ci_low"], row["ci_high"]), "clean_accuracy": pct(row["clean_accuracy"]),
        "scoring": str(row["scoring"]), "reported": rep, "diff": diff_pts(row.get("diff")),
        "source": row["source"] if isinstance(row.get("source"), str) else "",
    }


def _tidy_columns(summary: pd.DataFrame) -> list[tuple[str, str]]:
    has_rep = "reported" in summary and summary["reported"].notna().any()
    return [c for c in _TIDY if has_rep or c[0] not in ("reported", "diff", "source")]


def to_markdown(summary: pd.DataFrame) -> str:
    cols = _tidy_columns(summary)
    lines = ["| " + " | ".join(h for _, h in cols) + " |",
             "|" + "|".join("---:" if k in ("n", "accuracy", "clean_accuracy", "reported", "diff") else "---" for k, _ in cols) + "|"]
    for _, row in summary.iterrows():
        c = _tidy_cells(row)
        lines.append("| " + " | ".join(c[k].replace("|", "\\|") for k, _ in cols) + " |")
    return "\n".join(lines) + "\n"


def tex_escape(s: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    out = []
    for ch in s:
        out.append({"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$",
                    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}.get(ch, ch))
    return "".join(out)


def _tex_threat(norm: str, eps_label: str) -> str:
    if norm == "none":
        return ""
    sym = {"linf": r"$\ell_\infty$", "l2": r"$\ell_2$", "l1": r"$\ell_1$"}.get(norm, tex_escape(norm))
    return f"{sym} {tex_escape(eps_label)}"


def to_latex(summary: pd.DataFrame, caption: str | None = None) -> str:
    """The tidy summary as a booktabs table (needs ``\\usepackage{booktabs}``)."""
    cols = _tidy_columns(summary)
    right = {"n", "accuracy", "clean_accuracy", "reported", "diff"}
    spec = "".join("r" if k in right else "l" for k, _ in cols)
    out = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{" + spec + "}", r"\toprule",
           " & ".join(tex_escape(h) for _, h in cols) + r" \\", r"\midrule"]
    previous = None
    for _, row in summary.iterrows():
        c = _tidy_cells(row)
        if previous is not None and row["defense"] != previous:
            out.append(r"\addlinespace")
        previous = row["defense"]
        cells = [(_tex_threat(str(row["norm"]), str(row["eps_label"])) if k == "threat" else tex_escape(c[k])) for k, _ in cols]
        out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        out.append(r"\caption{" + tex_escape(caption) + "}")
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def to_csv(summary: pd.DataFrame) -> str:
    return str(summary.to_csv(index=False))


def to_json(summary: pd.DataFrame) -> str:
    return json.dumps(json.loads(summary.to_json(orient="records")), indent=2) + "\n"


def to_rich(summary: pd.DataFrame, title: str | None = None, notes: Sequence[str] = ()):  # type: ignore[no-untyped-def]
    """The tidy summary for a terminal: rows grouped under a bold defense line, a legend below."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    has_rep = "reported" in summary and summary["reported"].notna().any()
    sources = [s for s in dict.fromkeys(summary["source"]) if isinstance(s, str) and s] if has_rep else []
    measured = summary[summary["n"] > 0]
    # columns that carry information only when they vary: n, and the clean accuracy of each cell
    # (for a deterministic defense it is the clean row's accuracy in every cell)
    ns = sorted(set(measured["n"].astype(int)))
    show_n = len(ns) > 1
    show_clean = bool((measured.groupby("defense")["clean_accuracy"].nunique() > 1).any()) or not (measured["norm"] == "none").any()
    first_w = max([len(str(a)) + 2 for a in summary["attack"]] + [min(22, max(len(str(d)) for d in summary["defense"]))])
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, collapse_padding=True)
    table.add_column("attack", max_width=first_w, overflow="fold")
    table.add_column("threat", no_wrap=True)
    if show_n:
        table.add_column("n", justify="right", no_wrap=True)
    table.add_column("acc %", justify="right", no_wrap=True)
    table.add_column("95% CI", no_wrap=True)
    if show_clean:
        table.add_column("clean", justify="right", no_wrap=True)
    table.add_column("scoring", no_wrap=True)
    if has_rep:
        table.add_column("paper", justify="right", no_wrap=True)
        table.add_column("diff", justify="right", no_wrap=True)
    previous = None
    for _, row in summary.iterrows():
        if row["defense"] != previous:
            if previous is not None:
                table.add_section()
            table.add_row(Text(str(row["defense"]), style="bold", overflow="fold"))
            previous = row["defense"]
        c = _tidy_cells(row)
        worst = row["attack"] == WORST
        cells = [Text("  " + c["attack"], style="italic" if worst else "", no_wrap=True, overflow="ellipsis"), c["threat"]]
        if show_n:
            cells.append(c["n"])
        cells += [Text(c["accuracy"], style="bold" if worst else ""), ci_text(row["ci_low"], row["ci_high"], sep=",")]
        if show_clean:
            cells.append(c["clean_accuracy"])
        cells.append(short_scoring(c["scoring"]))
        if has_rep:
            rep = rep_pct(row.get("reported"))
            ref = (sources.index(row["source"]) + 1) if row.get("source") in sources else None
            cells.append(f"{rep}{str(ref).translate(_SUP)}" if rep and ref else rep)
            style = "" if is_missing(row.get("diff")) else ("green" if row.get("reported_in_ci") else "red")
            cells.append(Text(c["diff"], style=style))
        table.add_row(*cells)
    foot = [] if show_n or not ns else [f"n = {ns[0]} samples in every cell"]
    if not show_clean:
        foot.append("clean accuracy: the clean row of each defense")
    foot += legend(list(summary["scoring"].astype(str)))
    if has_rep:
        foot.append("paper = reported number (superscript: source); diff = measured - reported, in points, "
                    "green when the reported number lies inside the 95% CI, red outside")
        foot += [f"{i}. {s}" for i, s in enumerate(sources, 1)]
    foot += [f"note: {n}" for n in notes]
    return Group(table, *(Text(line, style="dim") for line in foot))


# ---- pivot ---------------------------------------------------------------------------------------
def _cell_md(cell: Cell | None, pivot: Pivot) -> str:
    if cell is None:
        return ""
    parts = []
    if cell.measured:
        parts.append(f"{pct(cell.accuracy)} {ci_text(cell.ci_low, cell.ci_high)}")
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
        cells = [r.defense + (" (reported)" if r.reported_only else ""), r.n_label, r.scoring_label,
                 *[_cell_md(r.cells.get(c.key), pivot) for c in cols]]
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
    foot = ["", "Cells: measured accuracy % [95% Wilson CI]; (paper = reported %, [k] its source, then measured - "
            "reported in points)."]
    foot += [f"[{i}] {s}" for i, s in enumerate(pivot.sources, 1)]
    foot += [f"Note: {n}" for n in pivot.notes]
    return "\n".join(lines + foot) + "\n"


def pivot_csv(pivot: Pivot) -> str:
    """One line per defense; per column: accuracy, ci_low, ci_high, n, reported, diff (fractions)."""
    records = []
    for r in pivot.rows:
        rec: dict[str, Any] = {"defense": r.defense, "reported_only": r.reported_only, "scoring": r.scoring_label}
        for c in pivot.columns:
            cell = r.cells.get(c.key) or Cell()
            d = cell.as_dict()
            for k in ("accuracy", "ci_low", "ci_high", "n", "reported", "diff", "source"):
                rec[f"{c.key} | {k}"] = d[k]
        records.append(rec)
    return str(pd.DataFrame(records).to_csv(index=False))


def pivot_json(pivot: Pivot) -> str:
    return json.dumps(pivot.to_dict(), indent=2, allow_nan=False) + "\n"


def pivot_latex(pivot: Pivot, caption: str | None = None) -> str:
    """Booktabs table: attacks as grouped column headers over their threats; a reported line under
    each measured row that has reported numbers; sources as numbered footnotes below."""
    cols = pivot.columns
    groups: list[tuple[str, int]] = []
    for c in cols:
        if groups and groups[-1][0] == c.attack:
            groups[-1] = (c.attack, groups[-1][1] + 1)
        else:
            groups.append((c.attack, 1))
    out = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{lll" + "r" * len(cols) + "}", r"\toprule"]
    top, rules, pos = ["", "", ""], [], 4
    for attack, span in groups:
        label = tex_escape("worst case" if attack == WORST else attack)
        top.append(r"\multicolumn{" + str(span) + r"}{c}{" + label + "}")
        rules.append(r"\cmidrule(lr){" + f"{pos}-{pos + span - 1}" + "}")
        pos += span
    out.append(" & ".join(top) + r" \\")
    out.append("".join(rules))
    out.append(" & ".join(["Defense", "$n$", "scoring"] + [_tex_threat(c.norm, c.eps_label) or "clean" for c in cols]) + r" \\")
    out.append(r"\midrule")

    def rep_cell(cell: Cell | None) -> str:
        if cell is None or not cell.has_reported:
            return ""
        ref = pivot.source_ref(cell.source)
        text = r"\textit{" + rep_pct(cell.reported) + "}" + (f"$^{{{ref}}}$" if ref else "")
        return text

    for r in pivot.rows:
        if r.reported_only:
            out.append(" & ".join([tex_escape(r.defense), "", r"\textit{reported}"] + [rep_cell(r.cells.get(c.key)) for c in cols]) + r" \\")
            continue
        cells = []
        for c in cols:
            cell = r.cells.get(c.key)
            cells.append("" if cell is None or not cell.measured else
                         pct(cell.accuracy) + r"\,{\scriptsize [" + pct(cell.ci_low) + ", " + pct(cell.ci_high) + "]}")
        out.append(" & ".join([tex_escape(r.defense), tex_escape(r.n_label.removeprefix("n=")), tex_escape(r.scoring_label)] + cells) + r" \\")
        if any(cl.has_reported for cl in r.cells.values()):
            out.append(" & ".join([r"\quad\textit{reported}", "", ""] + [rep_cell(r.cells.get(c.key)) for c in cols]) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    notes = [f"$^{{{i}}}$\\,{tex_escape(s)}" for i, s in enumerate(pivot.sources, 1)] + [tex_escape(n) for n in pivot.notes]
    if notes:
        out.append(r"\par\smallskip{\footnotesize " + "; ".join(notes) + "}")
    cap = caption or pivot.title
    if cap:
        out.append(r"\caption{" + tex_escape(cap.rstrip(". ")) + r". Accuracy in \%, 95\,\% Wilson interval in brackets.}")
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def _cell_rich(cell: Cell | None, pivot: Pivot):  # type: ignore[no-untyped-def]
    from rich.text import Text

    t = Text(justify="right", no_wrap=True)
    if cell is None:
        return t
    if cell.measured:
        t.append(pct(cell.accuracy), style="bold")
        t.append("\n" + ci_text(cell.ci_low, cell.ci_high, sep=","), style="dim")
    else:
        t.append("-")
    if cell.has_reported:
        ref = pivot.source_ref(cell.source)
        t.append("\n" + rep_pct(cell.reported) + (str(ref).translate(_SUP) if ref else ""), style="cyan")
        if cell.measured:
            t.append(f" {diff_pts(cell.diff)}", style="green" if cell.reported_in_ci else "red")
    return t


def _plain_width(cell: Cell | None, pivot: Pivot) -> int:
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
            t.add_column(("worst case" if c.attack == WORST else c.attack) + "\n" + c.threat,
                         justify="right", no_wrap=True)
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
        foot.append("cyan: reported % (superscript: source) and measured - reported in points, green when the "
                    "reported number lies inside the 95% CI, red outside")
    foot += legend(labels)
    foot += [f"{i}. {s}" for i, s in enumerate(pivot.sources, 1)]
    foot += [f"note: {n}" for n in pivot.notes]
    return Group(*tables, *(Text(line, style="dim") for line in foot))


# ---- entry points --------------------------------------------------------------------------------
def render(summary: pd.DataFrame, fmt: str, title: str | None = None, *, pivot: bool = False,
           manifest: dict[str, Any] | None = None, notes: Sequence[str] = ()) -> str:
    """Any non-rich format as text (``pivot`` = the papers' layout)."""
    if fmt not in FORMATS or fmt == "rich":
        raise ValueError(f"unknown text format {fmt!r}; use one of {FORMATS[1:]}")
    if pivot:
        p = build_pivot(summary, manifest, title=title or "")
        p.notes = list(notes)
        return {"md": pivot_markdown, "csv": pivot_csv, "json": pivot_json}.get(fmt, lambda q: pivot_latex(q, title))(p)
    if fmt == "md":
        text = to_markdown(summary)
        return text + "".join(f"\nNote: {n}\n" for n in notes)
    if fmt == "csv":
        return to_csv(summary)
    if fmt == "latex":
        return to_latex(summary, caption=title)
    return to_json(summary)


def rich_renderable(summary: pd.DataFrame, title: str | None = None, *, pivot: bool = False,
                    manifest: dict[str, Any] | None = None, notes: Sequence[str] = (), width: int = 100):  # type: ignore[no-untyped-def]
    """The rich version of :func:`render` (a renderable for ``Console.print``)."""
    if pivot:
        p = build_pivot(summary, manifest, title=title or "")
        p.notes = list(notes)
        return pivot_rich(p, width=width)
    return to_rich(summary, title=title, notes=notes)


__all__ = ["FORMATS", "pivot_csv", "pivot_json", "pivot_latex", "pivot_markdown", "pivot_rich", "render",
           "rich_renderable", "tex_escape", "to_csv", "to_json", "to_latex", "to_markdown", "to_rich"]
