"""From rows to the tidy summary: accuracy per cell with Wilson CIs, scoring of stochastic
defenses, worst case over attacks, and the suite's reported numbers beside the measured ones."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from robbench.threat import format_eps

SCORINGS = ("single", "mean", "majority", "worst")
WORST = "worst-case"


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


def wilson(k: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes of n (k rounded for mean scoring)."""
    if n == 0:
        return (float("nan"), float("nan"))
    ci = binomtest(int(round(k)), n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def scored(df: pd.DataFrame, scoring: str) -> pd.DataFrame:
    """Rows plus ``robust`` and ``clean`` scores under ``scoring`` (deterministic rows: their one draw)."""
    out = df.copy()
    out["robust"] = [score_draws(d, scoring) for d in out["adv_correct_draws"]]
    out["clean"] = [score_draws(d, scoring) for d in out["clean_correct_draws"]]
    return out


def _reported_lookup(manifest: dict[str, Any]) -> dict[tuple[str, str, str | None, float | None], dict[str, Any]]:
    table = {}
    for r in manifest.get("suite", {}).get("reported", []) or []:
        eps = r.get("eps")
        table[(r["defense"], r["attack"], r.get("norm"), None if eps is None else round(float(eps), 8))] = r
    return table


def summarize(df: pd.DataFrame, manifest: dict[str, Any], scoring: str | None = None,
              worst_case: bool = True) -> pd.DataFrame:
    """One line per cell (and per defense x threat worst case over attacks)."""
    scoring = scoring or manifest.get("suite", {}).get("evaluation", {}).get("scoring", "worst")
    s = scored(df, scoring)
    reported = _reported_lookup(manifest)
    order = {c["id"]: i for i, c in enumerate(manifest.get("cells", []))}
    lines = []
    for cell, g in s.groupby("cell", sort=False):
        first = g.iloc[0]
        n = len(g)
        k = float(g["robust"].sum())
        lo, hi = wilson(k, n)
        stochastic = bool(first["stochastic"])
        line = {
            "defense": first["defense"], "attack": first["attack"], "norm": first["norm"],
            "eps": float(first["eps"]), "eps_label": format_eps(float(first["eps"])) if first["norm"] != "none" else "",
            "n": n, "accuracy": k / n, "ci_low": lo, "ci_high": hi,
            "clean_accuracy": float(g["clean"].mean()),
            "scoring": scoring if stochastic and int(first["draws"]) > 1 else ("det-seed" if first["randomness"] == "det" else ("single" if stochastic else "deterministic")),
            "draws": int(first["draws"]), "gradient": first["gradient"], "randomness": first["randomness"],
            "eot": int(first["eot"]), "errors": int(g["error"].notna().sum()),
            "model_evals": float(g["model_evals"].mean()), "seconds": float(g["seconds"].mean()),
            "_order": order.get(cell, 10**6),
        }
        norm = None if first["norm"] == "none" else first["norm"]
        eps = None if norm is None else round(float(first["eps"]), 8)
        rep = reported.get((first["defense"], first["attack"], norm, eps)) or reported.get((first["defense"], first["attack"], None, None))
        if rep is not None:
            line["reported"] = float(rep["accuracy"]) / 100.0
            line["diff"] = line["accuracy"] - line["reported"]
            src = rep.get("source") or {}
            line["source"] = ", ".join(str(v) for v in (src.get("paper"), src.get("table")) if v)
        lines.append(line)
    if worst_case:
        attacked = s[s["norm"] != "none"]
        for (defense, norm, eps), g in attacked.groupby(["defense", "norm", "eps"], sort=False):
            attacks = sorted(g["attack"].unique())
            if len(attacks) < 2:
                continue
            per_sample = g.groupby("sample_id")["robust"].min()
            n = len(per_sample)
            k = float(per_sample.sum())
            lo, hi = wilson(k, n)
            lines.append({
                "defense": defense, "attack": WORST, "norm": norm, "eps": float(eps), "eps_label": format_eps(float(eps)),
                "n": n, "accuracy": k / n, "ci_low": lo, "ci_high": hi,
                "clean_accuracy": float(g.groupby("sample_id")["clean"].min().mean()),
                "scoring": f"min over {len(attacks)} attacks", "draws": int(g["draws"].max()), "gradient": "",
                "randomness": "", "eot": 0, "errors": int(g["error"].notna().sum()), "model_evals": float("nan"),
                "seconds": float("nan"), "_order": max(order.values(), default=0) + 1,
            })
    out = pd.DataFrame(lines)
    if out.empty:
        return out
    for col in ("reported", "diff", "source"):
        if col not in out:
            out[col] = np.nan if col != "source" else ""
    out = out.sort_values(["_order", "defense", "norm", "eps"], kind="stable").drop(columns="_order").reset_index(drop=True)
    return out
