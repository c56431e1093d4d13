"""From rows to the tidy summary: accuracy per cell with Wilson CIs, the scoring of stochastic
defenses, the per-sample worst case over attacks, and the suite's reported numbers beside them.

One line per cell, then one worst-case line per defense x threat with two or more attacks, then the
reported numbers that have no measured cell. Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from robbench.core.budget import eps_key, format_eps
from robbench.report.formats.labels import OVERRIDE
from robbench.report.reported import ReportedKey, attach_reported, reported_lookup
from robbench.report.stats import wilson
from robbench.results.manifest import Manifest
from robbench.results.scoring import scored, scoring_label
from robbench.suite.model import MIN_HONEST_DRAWS, Reported
from robbench.suite.reported import WORST

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
    "evaluation",
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
_LAST = 10**6
_NAN = float("nan")


def is_missing(v: Any) -> bool:
    """True for None / NaN (the empty cells of a summary)."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def _blank(defense: str, attack: str, norm: str, eps: float) -> dict[str, Any]:
    return {
        "defense": defense,
        "attack": attack,
        "norm": norm,
        "eps": eps,
        "eps_label": format_eps(eps) if norm != "none" else "",
        "n": 0,
        "accuracy": _NAN,
        "ci_low": _NAN,
        "ci_high": _NAN,
        "clean_accuracy": _NAN,
        "scoring": "",
        "evaluation": "",
        "draws": 0,
        "gradient": "",
        "randomness": "",
        "eot": 0,
        "errors": 0,
        "model_evals": _NAN,
        "seconds": _NAN,
    }


def _measured(line: dict[str, Any], k: float, n: int) -> dict[str, Any]:
    lo, hi = wilson(k, n)
    return {**line, "n": n, "accuracy": k / n if n else _NAN, "ci_low": lo, "ci_high": hi}


#: the worst case over a defense's attacks when at least one of them is adaptive: its robust accuracy
ADAPTIVE = "adaptive"
#: an accuracy that only bounds robustness from above: no attack behind it attacked the defense itself
UPPER_BOUND = "upper bound"


#: an attack through the defense below robbench's strength floor (robbench.run.strength)
WEAK = "adaptive (weak)"


def evaluation_label(kind: str) -> str:
    """``adaptive``, ``adaptive (weak)``, ``upper bound (gray-box)``, ``upper bound (transfer)`` or ``clean``."""
    return kind if kind in (ADAPTIVE, WEAK, "clean") else f"{UPPER_BOUND} ({kind})"


def _kinds(manifest: Manifest) -> dict[str, str]:
    """cell id -> adaptive | adaptive (weak) | gray-box | transfer | clean, as the run recorded it; for a
    manifest older than these records, from the attack's spec (an unknown attack counts as adaptive)."""
    specs = {a.id: a.evaluation for a in manifest.suite.attacks}
    return {c.id: str(c.evaluation or specs.get(c.attack, ADAPTIVE)) for c in manifest.cells}


def _early_stopped(manifest: Manifest) -> set[str]:
    """Cells where only ``overrides: [library-early-stop]`` let a library's stopping rule decide what was
    returned (their lines carry the override mark like any other overridden headline)."""
    if "library-early-stop" not in manifest.suite.evaluation.overrides:
        return set()
    from robbench.core import registry
    from robbench.run.honesty import early_stops

    suite = manifest.suite
    try:
        defenses = {d.display: registry.defenses.get(d.name) for d in suite.defenses}
        attacks = {a.id: registry.attacks.get(a.name) for a in suite.attacks}
    except Exception:  # a plugin that is gone: mark every cell of the run rather than none
        return {c.id for c in manifest.cells}
    pairs = {(a, d) for a, d, _ in early_stops(suite, defenses, attacks)}
    return {c.id for c in manifest.cells if (c.attack, c.defense) in pairs}


def _overridden(stochastic: bool, draws: int, scoring: str) -> bool:
    """Only an override allows this headline: too few draws, or a soft scoring of several draws."""
    return stochastic and (draws < MIN_HONEST_DRAWS or (draws > 1 and scoring != "worst"))


def _scoring(first: pd.Series, scoring: str, early: bool) -> str:
    """The cell's scoring label, marked when only an override allows it (too few draws, a soft headline,
    a library's stopping rule)."""
    stochastic, randomness, draws = bool(first["stochastic"]), str(first["randomness"]), int(first["draws"])
    label = scoring_label(stochastic, randomness, draws, scoring)
    return label + OVERRIDE if early or _overridden(stochastic, draws, scoring) else label


def _cell_lines(
    s: pd.DataFrame, scoring: str, order: dict[str, int], kinds: dict[str, str], early: set[str]
) -> Iterator[dict[str, Any]]:
    for cell, g in s.groupby("cell", sort=False):
        first = g.iloc[0]
        norm = str(first["norm"])
        line = _measured(
            _blank(str(first["defense"]), str(first["attack"]), norm, float(first["eps"])),
            float(g["robust"].sum()),
            len(g),
        )
        line.update(
            clean_accuracy=float(g["clean"].mean()),
            scoring=_scoring(first, scoring, str(cell) in early),
            evaluation="clean" if norm == "none" else evaluation_label(kinds.get(str(cell), ADAPTIVE)),
            draws=int(first["draws"]),
            gradient=first["gradient"],
            randomness=first["randomness"],
            eot=int(first["eot"]),
            errors=int(g["error"].notna().sum()),
            model_evals=float(g["model_evals"].mean()),
            seconds=float(g["seconds"].mean()),
            _order=order.get(str(cell), _LAST),
        )
        yield line


def _worst_kind(cells: list[str], kinds: dict[str, str]) -> str:
    """adaptive if one of the cells is; else adaptive (weak) if one is; else an upper bound."""
    found = {kinds.get(c, ADAPTIVE) for c in cells}
    return ADAPTIVE if ADAPTIVE in found else WEAK if WEAK in found else UPPER_BOUND


def _worst_case_lines(
    s: pd.DataFrame, last: int, kinds: dict[str, str], scoring: str, early: set[str]
) -> Iterator[dict[str, Any]]:
    """Per defense x threat: robust only if a sample survives every attack (samples every attack ran on).

    Every attack counts, upper-bound ones too (a point a gray-box attack breaks is broken); the line is
    the defense's *adaptive* robust accuracy when at least one of the attacks is adaptive at full
    strength, ``adaptive (weak)`` when its adaptive attacks are all weak, else an upper bound. It
    carries the override mark when any of its cells does."""
    attacked = s[s["norm"] != "none"]
    for (defense, norm, eps), g in attacked.groupby(["defense", "norm", "eps"], sort=False):
        attacks = list(dict.fromkeys(g["attack"]))
        if len(attacks) < 2:
            continue
        wide = g.pivot_table(index="sample_id", columns="attack", values="robust", aggfunc="min").dropna()
        clean = g.pivot_table(index="sample_id", columns="attack", values="clean", aggfunc="min")
        n = len(wide)
        overridden = bool(early & {str(c) for c in g["cell"].unique()}) or any(
            _overridden(bool(st), int(d), scoring) for st, d in zip(g["stochastic"], g["draws"], strict=True)
        )
        line = _measured(_blank(str(defense), WORST, str(norm), float(eps)), float(wide.min(axis=1).sum()), n)  # type: ignore[arg-type]
        line.update(
            clean_accuracy=float(clean.loc[wide.index].min(axis=1).mean()) if n else _NAN,
            scoring=f"min over {len(attacks)} attacks" + (OVERRIDE if overridden else ""),
            evaluation=_worst_kind([str(c) for c in g["cell"].unique()], kinds),
            draws=int(g["draws"].max()),
            errors=int(g["error"].notna().sum()),
            _order=last,
        )
        yield line


def _reported_lines(entries: list[Reported], used: set[ReportedKey], worst_case: bool) -> Iterator[dict[str, Any]]:
    """Reported numbers without a measured line: methods the suite does not run, cells not measured."""
    for i, r in enumerate(entries):
        if not r.reported_only and (r.key in used or (r.attack == WORST and not worst_case)):
            continue
        line = _blank(r.defense, r.attack, r.norm or "none", float(r.eps) if r.eps is not None else 0.0)
        line.update(
            scoring="reported only" if r.reported_only else "not measured",
            _order=10**7 + i,
            reported_only=r.reported_only,
        )
        if r.reported_only:
            line["_dorder"] = 10**7 + i
        attach_reported(line, r)
        yield line


def _line_key(line: dict[str, Any]) -> ReportedKey:
    norm = None if line["norm"] == "none" else str(line["norm"])
    return (str(line["defense"]), str(line["attack"]), norm, eps_key(None if norm is None else line["eps"]))


def _frame(lines: list[dict[str, Any]], defense_order: dict[str, int]) -> pd.DataFrame:
    out = pd.DataFrame(lines)
    if out.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SUMMARY_COLUMNS})
    defaults = {
        "reported": np.nan,
        "diff": np.nan,
        "reported_in_ci": None,
        "reported_n": None,
        "source": "",
        "reported_only": False,
        "_dorder": np.nan,
    }
    for col, default in defaults.items():
        if col not in out:
            out[col] = default
    out["source"] = out["source"].fillna("")
    out["reported_only"] = out["reported_only"].fillna(False).astype(bool)
    by_defense = out["defense"].map(lambda d: defense_order.get(d, _LAST))
    out["_dorder"] = out["_dorder"].fillna(by_defense)
    # measured defenses in suite order (cells in plan order within), then reported-only methods
    first_seen = out.groupby("defense", sort=False)["_dorder"].transform("min")
    out = out.assign(_d=first_seen).sort_values(["_d", "_order"], kind="stable").reset_index(drop=True)
    return out[SUMMARY_COLUMNS]


def summarize(
    df: pd.DataFrame,
    manifest: Manifest,
    scoring: str | None = None,
    worst_case: bool = True,
    reported_only: bool = True,
) -> pd.DataFrame:
    """One line per cell, per defense x threat the worst case over attacks, and the reported-only lines.

    ``scoring`` overrides the suite's scoring of stochastic defenses evaluated with several draws.
    """
    scoring = scoring or manifest.scoring
    s = scored(df, scoring)
    entries = list(manifest.suite.reported)
    reported = reported_lookup(entries)
    order = {c.id: i for i, c in enumerate(manifest.cells)}
    kinds, early = _kinds(manifest), _early_stopped(manifest)
    lines = list(_cell_lines(s, scoring, order, kinds, early))
    if worst_case:
        lines += list(_worst_case_lines(s, max(order.values(), default=0) + 1, kinds, scoring, early))
    used = set()
    for line in lines:
        key = _line_key(line)
        attach_reported(line, reported.get(key))
        used.add(key)
    if reported_only:
        lines += list(_reported_lines(entries, used, worst_case))
    defense_order = {d.display: i for i, d in enumerate(manifest.suite.defenses)}
    return _frame(lines, defense_order)
