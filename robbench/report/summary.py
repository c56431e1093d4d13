"""From rows to the tidy summary: accuracy per cell with Wilson CIs, scoring of stochastic
defenses, worst case over attacks, and the suite's reported numbers beside the measured ones.

Also the checked loader every reader of a results directory uses (:func:`load_results`): an
empty, corrupt or foreign directory is one clear :class:`~robbench.errors.ResultsError` (exit 2).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from robbench.core.threat import format_eps
from robbench.report.reported import _attach_reported, _reported_lookup, reported_entries
from robbench.report.stats import wilson
from robbench.results.scoring import scored, scoring_label, suite_scoring
from robbench.suite.reported import WORST, _eps_key

SUMMARY_COLUMNS = [
    "defense",
    "attack",
    "norm",
    "eps",
    "eps_label",
    "n",
    "accuracy",
    "ci_low",
    "ci_high",
    "clean_accuracy",
    "scoring",
    "draws",
    "gradient",
    "randomness",
    "eot",
    "errors",
    "model_evals",
    "seconds",
    "reported",
    "diff",
    "reported_in_ci",
    "reported_n",
    "source",
    "reported_only",
]


# ---- summary -------------------------------------------------------------------------------------
def summarize(
    df: pd.DataFrame,
    manifest: dict[str, Any],
    scoring: str | None = None,
    worst_case: bool = True,
    reported_only: bool = True,
) -> pd.DataFrame:
    """One line per cell, per defense x threat worst case over attacks, and reported-only rows.

    Accuracies are fractions in [0, 1]; ``reported`` / ``diff`` too. ``scoring`` overrides the
    suite's scoring of stochastic defenses evaluated with several draws.
    """
    scoring = scoring or suite_scoring(manifest)
    s = scored(df, scoring)
    entries = reported_entries(manifest)
    reported = _reported_lookup(entries)
    order = {c["id"]: i for i, c in enumerate(manifest.get("cells", []))}
    defense_order = {
        d.get("id") or d.get("name"): i for i, d in enumerate((manifest.get("suite") or {}).get("defenses") or [])
    }
    lines = []
    used: set[tuple[Any, ...]] = set()  # reported entries placed beside a measured cell
    for cell, g in s.groupby("cell", sort=False):
        first = g.iloc[0]
        n = len(g)
        k = float(g["robust"].sum())
        lo, hi = wilson(k, n)
        norm = str(first["norm"])
        line: dict[str, Any] = {
            "defense": first["defense"],
            "attack": first["attack"],
            "norm": norm,
            "eps": float(first["eps"]),
            "eps_label": format_eps(float(first["eps"])) if norm != "none" else "",
            "n": n,
            "accuracy": k / n,
            "ci_low": lo,
            "ci_high": hi,
            "clean_accuracy": float(g["clean"].mean()),
            "scoring": scoring_label(bool(first["stochastic"]), str(first["randomness"]), int(first["draws"]), scoring),
            "draws": int(first["draws"]),
            "gradient": first["gradient"],
            "randomness": first["randomness"],
            "eot": int(first["eot"]),
            "errors": int(g["error"].notna().sum()),
            "model_evals": float(g["model_evals"].mean()),
            "seconds": float(g["seconds"].mean()),
            "_order": order.get(cell, 10**6),
            "_dorder": defense_order.get(first["defense"], 10**6),
        }
        key_norm = None if norm == "none" else norm
        key = (first["defense"], first["attack"], key_norm, _eps_key(None if key_norm is None else first["eps"]))
        _attach_reported(line, reported.get(key))
        used.add(key)
        lines.append(line)
    if worst_case:
        attacked = s[s["norm"] != "none"]
        last = max(order.values(), default=0) + 1
        for (defense, norm, eps), g in attacked.groupby(["defense", "norm", "eps"], sort=False):
            attacks = list(dict.fromkeys(g["attack"]))
            if len(attacks) < 2:
                continue
            # per point: robust only if it survives every attack; only points every attack has run on
            wide = g.pivot_table(index="sample_id", columns="attack", values="robust", aggfunc="min")
            clean = g.pivot_table(index="sample_id", columns="attack", values="clean", aggfunc="min")
            wide = wide.dropna()
            n = len(wide)
            k = float(wide.min(axis=1).sum())
            lo, hi = wilson(k, n)
            line = {
                "defense": defense,
                "attack": WORST,
                "norm": norm,
                "eps": float(eps),
                "eps_label": format_eps(float(eps)),
                "n": n,
                "accuracy": k / n if n else float("nan"),
                "ci_low": lo,
                "ci_high": hi,
                "clean_accuracy": float(clean.loc[wide.index].min(axis=1).mean()) if n else float("nan"),
                "scoring": f"min over {len(attacks)} attacks",
                "draws": int(g["draws"].max()),
                "gradient": "",
                "randomness": "",
                "eot": 0,
                "errors": int(g["error"].notna().sum()),
                "model_evals": float("nan"),
                "seconds": float("nan"),
                "_order": last,
                "_dorder": defense_order.get(defense, 10**6),
            }
            _attach_reported(line, reported.get((defense, WORST, norm, _eps_key(eps))))
            used.add((defense, WORST, norm, _eps_key(eps)))
            lines.append(line)
    if reported_only:
        for i, r in enumerate(entries):
            key = (r["defense"], r["attack"], r.get("norm"), _eps_key(r.get("eps")))
            if not r.get("reported_only") and (key in used or (r["attack"] == WORST and not worst_case)):
                continue
            norm = r.get("norm") or "none"
            eps = float(r["eps"]) if r.get("eps") is not None else 0.0
            line = {
                "defense": r["defense"],
                "attack": r["attack"],
                "norm": norm,
                "eps": eps,
                "eps_label": format_eps(eps) if norm != "none" else "",
                "n": 0,
                "accuracy": float("nan"),
                "ci_low": float("nan"),
                "ci_high": float("nan"),
                "clean_accuracy": float("nan"),
                "scoring": "reported only" if r.get("reported_only") else "not measured",
                "draws": 0,
                "gradient": "",
                "randomness": "",
                "eot": 0,
                "errors": 0,
                "model_evals": float("nan"),
                "seconds": float("nan"),
                "_order": 10**7 + i,
                "_dorder": 10**7 + i,
            }
            if not r.get("reported_only"):  # a suite defense: keep it with its measured cells
                line["_dorder"] = defense_order.get(r["defense"], 10**6)
            _attach_reported(line, r)
            line["reported_only"] = bool(r.get("reported_only"))
            lines.append(line)
    out = pd.DataFrame(lines)
    if out.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SUMMARY_COLUMNS})
    for col, default in (
        ("reported", np.nan),
        ("diff", np.nan),
        ("reported_in_ci", None),
        ("reported_n", None),
        ("source", ""),
        ("reported_only", False),
    ):
        if col not in out:
            out[col] = default
    out["source"] = out["source"].fillna("")
    out["reported_only"] = out["reported_only"].fillna(False).astype(bool)
    # measured defenses in suite order (cells in plan order within), then reported-only methods
    first_seen = out.groupby("defense", sort=False)["_dorder"].transform("min")
    out = (
        out.assign(_d=first_seen)
        .sort_values(["_d", "_order"], kind="stable")
        .drop(columns=["_order", "_dorder", "_d"])
        .reset_index(drop=True)
    )
    return out[SUMMARY_COLUMNS]


def is_missing(v: Any) -> bool:
    """True for None / NaN (the empty cells of a summary)."""
    return v is None or (isinstance(v, float) and math.isnan(v))
