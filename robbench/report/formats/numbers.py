"""Number formatting shared by every renderer: percentages, point differences, CIs."""

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
