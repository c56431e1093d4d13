"""Scoring of the stored per-draw correctness: one row's draws -> a score under single, mean,
majority or worst-of-m scoring. The engine (cascade, checks) and the reports score alike through here.
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
    if draws <= 1:
        return "det-seed" if randomness == "det" else "single draw"
    word = {"single": "first", "mean": "mean", "majority": "majority", "worst": "worst"}[scoring]
    # a det cell's draw 0 is the attacker's seeds, the others fresh
    return f"{word} of {draws} draws" + (" (det)" if randomness == "det" else "")
