"""Render a summary as rich, markdown, CSV, LaTeX (booktabs) or JSON."""

from __future__ import annotations

import json
import math

import pandas as pd

FORMATS = ("rich", "md", "csv", "latex", "json")

_COLS = [("defense", "defense"), ("attack", "attack"), ("norm", "norm"), ("eps_label", "eps"), ("n", "n"),
         ("accuracy", "acc %"), ("ci", "95% CI"), ("clean_accuracy", "clean %"), ("scoring", "scoring"),
         ("reported", "reported %"), ("diff", "diff"), ("source", "source")]


def _pct(v: object) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * float(v):.1f}"  # type: ignore[arg-type]


def _cells(row: pd.Series) -> dict[str, str]:
    diff = row.get("diff")
    return {
        "defense": str(row["defense"]), "attack": str(row["attack"]),
        "norm": "" if row["norm"] == "none" else ("Linf" if row["norm"] == "linf" else row["norm"].upper()),
        "eps_label": str(row["eps_label"]), "n": str(row["n"]), "accuracy": _pct(row["accuracy"]),
        "ci": f"[{_pct(row['ci_low'])}, {_pct(row['ci_high'])}]", "clean_accuracy": _pct(row["clean_accuracy"]),
        "scoring": str(row["scoring"]), "reported": _pct(row.get("reported")),
        "diff": "" if diff is None or (isinstance(diff, float) and math.isnan(diff)) else f"{100 * float(diff):+.1f}",
        "source": "" if not isinstance(row.get("source"), str) else row["source"],
    }


def _columns(summary: pd.DataFrame) -> list[tuple[str, str]]:
    has_rep = "reported" in summary and summary["reported"].notna().any()
    return [c for c in _COLS if has_rep or c[0] not in ("reported", "diff", "source")]


def to_markdown(summary: pd.DataFrame) -> str:
    cols = _columns(summary)
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in summary.iterrows():
        c = _cells(row)
        lines.append("| " + " | ".join(c[k].replace("|", "\\|") for k, _ in cols) + " |")
    return "\n".join(lines) + "\n"


def _tex(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("$", r"\$"),
                 ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\textasciicircum{}")):
        s = s.replace(a, b)
    return s


def to_latex(summary: pd.DataFrame, caption: str | None = None) -> str:
    cols = _columns(summary)
    out = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{" + "l" * 4 + "r" * (len(cols) - 4) + "}", r"\toprule",
           " & ".join(_tex(h) for _, h in cols) + r" \\", r"\midrule"]
    for _, row in summary.iterrows():
        c = _cells(row)
        out.append(" & ".join(_tex(c[k]) for k, _ in cols) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        out.append(r"\caption{" + _tex(caption) + "}")
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def to_csv(summary: pd.DataFrame) -> str:
    return str(summary.to_csv(index=False))


def to_json(summary: pd.DataFrame) -> str:
    return json.dumps(json.loads(summary.to_json(orient="records")), indent=2) + "\n"


def to_rich(summary: pd.DataFrame, title: str | None = None):  # type: ignore[no-untyped-def]
    from rich.table import Table

    cols = _columns(summary)
    table = Table(title=title, show_lines=False)
    for key, head in cols:
        table.add_column(head, justify="right" if key in ("n", "accuracy", "clean_accuracy", "reported", "diff") else "left")
    for _, row in summary.iterrows():
        c = _cells(row)
        table.add_row(*[c[k] for k, _ in cols])
    return table


def render(summary: pd.DataFrame, fmt: str, title: str | None = None) -> str:
    if fmt == "md":
        return to_markdown(summary)
    if fmt == "csv":
        return to_csv(summary)
    if fmt == "latex":
        return to_latex(summary, caption=title)
    if fmt == "json":
        return to_json(summary)
    raise ValueError(f"unknown format {fmt!r}; use one of {FORMATS}")
