"""From rows to the tidy summary: accuracy per cell with Wilson CIs, scoring of stochastic
defenses, worst case over attacks, and the suite's reported numbers beside the measured ones.

Also the checked loader every reader of a results directory uses (:func:`load_results`): an
empty, corrupt or foreign directory is one clear :class:`~robbench.errors.ResultsError` (exit 2).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

SCORINGS = ("single", "mean", "majority", "worst")


def score_draws(draws: Any, scoring: str) -> float:
    """Score one row's per-draw correctness list: single draw, mean, majority vote, or worst case."""
    arr = np.asarray(list(draws), dtype=bool)
    if arr.size == 0:
        return 0.0
    if scoring == "single":
        return float(arr[0])
    if scoring == "mean":
        return float(arr.mean())
    if scoring == "majority":
        return float(arr.mean() > 0.5)
    if scoring == "worst":
        return float(arr.all())
    raise ValueError(f"unknown scoring {scoring!r}; use one of {SCORINGS}")


def scored(df: pd.DataFrame, scoring: str) -> pd.DataFrame:
    """Rows plus ``robust`` and ``clean`` scores under ``scoring`` (deterministic rows: their one draw)."""
    out = df.copy()
    out["robust"] = [score_draws(d, scoring) for d in out["adv_correct_draws"]]
    out["clean"] = [score_draws(d, scoring) for d in out["clean_correct_draws"]]
    return out


def scoring_label(stochastic: bool, randomness: str, draws: int, scoring: str) -> str:
    """How a cell's accuracy was scored, in words (shown in every table)."""
    if not stochastic:
        return "deterministic"
    if randomness == "det":
        return "det-seed"
    if draws <= 1:
        return "single draw"
    word = {"single": "first", "mean": "mean", "majority": "majority", "worst": "worst"}[scoring]
    return f"{word} of {draws} draws"


def suite_scoring(manifest: dict[str, Any]) -> str:
    return str(((manifest.get("suite") or {}).get("evaluation") or {}).get("scoring", "worst"))
