"""Render a summary, tidy or pivoted, as rich, markdown, CSV, LaTeX (booktabs) or JSON.

Human formats (rich, markdown, LaTeX) show percentages; machine formats (CSV, JSON) keep the
summary's fractions in [0, 1]. The rich output is laid out for an 80-100 column terminal: the tidy
table groups rows under a defense heading and uses short scoring labels with a legend; the pivot is
split into several tables when its columns do not fit the width.
"""

from __future__ import annotations

from robbench.report.summary import is_missing


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
