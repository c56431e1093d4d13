"""The tidy summary's columns and cells, and its markdown, CSV and JSON renderings."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from robbench.core.budget import threat_label
from robbench.report.formats.numbers import ci_text, diff_pts, pct, rep_pct
from robbench.report.summary import is_missing


def _threat(row: pd.Series) -> str:
    return threat_label(str(row["norm"]), str(row["eps_label"]))


# ---- tidy ----------------------------------------------------------------------------------------
_TIDY = [
    ("defense", "defense"),
    ("attack", "attack"),
    ("threat", "threat"),
    ("n", "n"),
    ("accuracy", "acc %"),
    ("ci", "95% CI"),
    ("clean_accuracy", "clean %"),
    ("protocol", "protocol"),
    ("scoring", "scoring"),
    ("evaluation", "evaluation"),
    ("reported", "reported %"),
    ("diff", "diff"),
    ("source", "source"),
]


def protocol(row: pd.Series) -> str:
    """How the attack saw the defense: gradient mode (or the transfer surrogate), randomness, EoT (attacked
    cells only)."""
    grad, rnd = row.get("gradient"), row.get("randomness")
    if not isinstance(grad, str) or not grad or str(row.get("norm")) == "none":
        return ""
    if str(row.get("evaluation", "")).endswith("(transfer)"):
        return "transfer (surrogate's gradient)"
    parts = [grad if grad != "classifier" else "classifier only"]
    if isinstance(rnd, str) and rnd not in ("", "none"):
        parts.append(rnd)
    eot: Any = row.get("eot")
    if not is_missing(eot) and int(eot) > 1:
        parts.append(f"EoT {int(eot)}")
    return ", ".join(parts)


def tidy_cells(row: pd.Series) -> dict[str, str]:
    only = bool(row.get("reported_only", False)) or int(row["n"]) == 0
    rep = rep_pct(row.get("reported"))
    if rep and not is_missing(row.get("reported_n")):
        rep += f" (n={int(row['reported_n'])})"
    return {
        "defense": str(row["defense"]),
        "attack": str(row["attack"]),
        "threat": _threat(row),
        "n": "" if only else str(row["n"]),
        "accuracy": "-" if only else pct(row["accuracy"]),
        "ci": ci_text(row["ci_low"], row["ci_high"]),
        "clean_accuracy": pct(row["clean_accuracy"]),
        "protocol": protocol(row),
        "scoring": str(row["scoring"]),
        "evaluation": str(row.get("evaluation") or ""),
        "reported": rep,
        "diff": diff_pts(row.get("diff")),
        "source": row["source"] if isinstance(row.get("source"), str) else "",
    }


def tidy_columns(summary: pd.DataFrame) -> list[tuple[str, str]]:
    has_rep = "reported" in summary and summary["reported"].notna().any()
    return [c for c in _TIDY if has_rep or c[0] not in ("reported", "diff", "source")]


def to_markdown(summary: pd.DataFrame) -> str:
    cols = tidy_columns(summary)
    lines = [
        "| " + " | ".join(h for _, h in cols) + " |",
        "|"
        + "|".join("---:" if k in ("n", "accuracy", "clean_accuracy", "reported", "diff") else "---" for k, _ in cols)
        + "|",
    ]
    for _, row in summary.iterrows():
        c = tidy_cells(row)
        lines.append("| " + " | ".join(c[k].replace("|", "\\|") for k, _ in cols) + " |")
    return "\n".join(lines) + "\n"


def to_csv(summary: pd.DataFrame) -> str:
    return str(summary.to_csv(index=False))


def to_json(summary: pd.DataFrame) -> str:
    return json.dumps(json.loads(summary.to_json(orient="records")), indent=2) + "\n"
