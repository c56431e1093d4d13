"""LaTeX (booktabs) rendering of a tidy summary and of a pivot."""

from __future__ import annotations

from typing import Any

import pandas as pd

from robbench.report.formats.numbers import pct, rep_pct
from robbench.report.formats.tidy import tidy_cells, tidy_columns
from robbench.report.pivot import Pivot, PivotCell
from robbench.suite.reported import WORST


def tex_escape(s: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    out = []
    for ch in s:
        out.append(
            {
                "\\": r"\textbackslash{}",
                "&": r"\&",
                "%": r"\%",
                "_": r"\_",
                "#": r"\#",
                "$": r"\$",
                "{": r"\{",
                "}": r"\}",
                "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}",
                "<": r"\textless{}",
                ">": r"\textgreater{}",
                "|": r"\textbar{}",
            }.get(ch, ch)
        )
    return "".join(out)


def _tex_threat(norm: str, eps_label: str) -> str:
    if norm == "none":
        return ""
    sym = {"linf": r"$\ell_\infty$", "l2": r"$\ell_2$", "l1": r"$\ell_1$"}.get(norm, tex_escape(norm))
    return f"{sym} {tex_escape(eps_label)}"


def to_latex(summary: pd.DataFrame, caption: str | None = None) -> str:
    """The tidy summary as a booktabs table (needs ``\\usepackage{booktabs}``)."""
    cols = tidy_columns(summary)
    right = {"n", "accuracy", "clean_accuracy", "reported", "diff"}
    spec = "".join("r" if k in right else "l" for k, _ in cols)
    out = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\begin{tabular}{" + spec + "}",
        r"\toprule",
        " & ".join(tex_escape(h) for _, h in cols) + r" \\",
        r"\midrule",
    ]
    previous = None
    for _, row in summary.iterrows():
        c = tidy_cells(row)
        if previous is not None and row["defense"] != previous:
            out.append(r"\addlinespace")
        previous = row["defense"]
        cells = [
            (_tex_threat(str(row["norm"]), str(row["eps_label"])) if k == "threat" else tex_escape(c[k]))
            for k, _ in cols
        ]
        out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        out.append(r"\caption{" + tex_escape(caption) + "}")
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def _latex_header(cols: list[Any]) -> list[str]:
    """The attack groups over their threats, with cmidrules, then the column titles."""
    groups: list[tuple[str, int]] = []
    for c in cols:
        if groups and groups[-1][0] == c.attack:
            groups[-1] = (c.attack, groups[-1][1] + 1)
        else:
            groups.append((c.attack, 1))
    top, rules, pos = ["", "", ""], [], 4
    for attack, span in groups:
        label = tex_escape("worst case" if attack == WORST else attack)
        top.append(r"\multicolumn{" + str(span) + r"}{c}{" + label + "}")
        rules.append(r"\cmidrule(lr){" + f"{pos}-{pos + span - 1}" + "}")
        pos += span
    titles = ["Defense", "$n$", "scoring"] + [_tex_threat(c.norm, c.eps_label) or "clean" for c in cols]
    return [" & ".join(top) + r" \\", "".join(rules), " & ".join(titles) + r" \\", r"\midrule"]


def _rep_cell(pivot: Pivot, cell: PivotCell | None) -> str:
    if cell is None or not cell.has_reported:
        return ""
    ref = pivot.source_ref(cell.source)
    return r"\textit{" + rep_pct(cell.reported) + "}" + (f"$^{{{ref}}}$" if ref else "")


def _measured_cell(cell: PivotCell | None) -> str:
    if cell is None or not cell.measured:
        return ""
    mark = r"$^{\mathrm{" + cell.mark + "}}$" if cell.mark else ""
    return pct(cell.accuracy) + mark + r"\,{\scriptsize [" + pct(cell.ci_low) + ", " + pct(cell.ci_high) + "]}"


def _latex_rows(pivot: Pivot) -> list[str]:
    """One line per measured row (and a reported line under it where the paper has numbers)."""
    cols, out = pivot.columns, []
    for r in pivot.rows:
        reported = [_rep_cell(pivot, r.cells.get(c.key)) for c in cols]
        if r.reported_only:
            out.append(" & ".join([tex_escape(r.defense), "", r"\textit{reported}", *reported]) + r" \\")
            continue
        head = [tex_escape(r.defense), tex_escape(r.n_label.removeprefix("n=")), tex_escape(r.scoring_label)]
        out.append(" & ".join(head + [_measured_cell(r.cells.get(c.key)) for c in cols]) + r" \\")
        if any(cl.has_reported for cl in r.cells.values()):
            out.append(" & ".join([r"\quad\textit{reported}", "", "", *reported]) + r" \\")
    return out


def pivot_latex(pivot: Pivot, caption: str | None = None) -> str:
    """Booktabs table: attacks as grouped column headers over their threats; a reported line under
    each measured row that has reported numbers; sources as numbered footnotes below."""
    cols = pivot.columns
    out = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{lll" + "r" * len(cols) + "}", r"\toprule"]
    out += _latex_header(cols) + _latex_rows(pivot)
    out += [r"\bottomrule", r"\end{tabular}"]
    notes = [f"$^{{{i}}}$\\,{tex_escape(s)}" for i, s in enumerate(pivot.sources, 1)]
    notes += [tex_escape(n) for n in pivot.notes]
    if notes:
        out.append(r"\par\smallskip{\footnotesize " + "; ".join(notes) + "}")
    cap = caption or pivot.title
    if cap:
        out.append(
            r"\caption{" + tex_escape(cap.rstrip(". ")) + r". Accuracy in \%, 95\,\% Wilson interval in brackets.}"
        )
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"
