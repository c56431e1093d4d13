"""From rows to the tidy summary: accuracy per cell with Wilson CIs, scoring of stochastic
defenses, worst case over attacks, and the suite's reported numbers beside the measured ones.

Also the checked loader every reader of a results directory uses (:func:`load_results`): an
empty, corrupt or foreign directory is one clear :class:`~robbench.errors.ResultsError` (exit 2).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from robbench.errors import ResultsError, SuiteError
from robbench.threat import format_eps

SCORINGS = ("single", "mean", "majority", "worst")
#: the attack id of the per-sample worst case over a defense's attacks at one threat
WORST = "worst-case"
SUMMARY_COLUMNS = ["defense", "attack", "norm", "eps", "eps_label", "n", "accuracy", "ci_low", "ci_high",
                   "clean_accuracy", "scoring", "draws", "gradient", "randomness", "eot", "errors",
                   "model_evals", "seconds", "reported", "diff", "reported_in_ci", "reported_n", "source",
                   "reported_only"]


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
    # the closed form (as scipy.stats.binomtest(...).proportion_ci(method="wilson"), which a test
    # compares it with); scipy.stats itself costs ~1.7 s to import, paid by every table
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = int(round(k)) / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


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


# ---- reported numbers ----------------------------------------------------------------------------
def _eps_key(eps: Any) -> float | None:
    return None if eps is None else round(float(eps), 8)


def _source_text(src: dict[str, Any] | None) -> str:
    """``paper, table (note)``: shown as a numbered footnote beside the reported number."""
    src = src or {}
    text = ", ".join(str(v) for v in (src.get("paper"), src.get("table")) if v)
    return f"{text} ({src['note']})" if src.get("note") else text


def reported_entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The suite's ``reported:`` entries as plain dicts (old manifests lack the newer keys)."""
    return [dict(r) for r in ((manifest.get("suite") or {}).get("reported") or [])]


def _reported_lookup(entries: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str | None, float | None], dict[str, Any]]:
    table = {}
    for r in entries:
        if r.get("reported_only"):
            continue
        table[(r["defense"], r["attack"], r.get("norm"), _eps_key(r.get("eps")))] = r
    return table


def _attach_reported(line: dict[str, Any], rep: dict[str, Any] | None) -> None:
    if rep is None:
        return
    value = float(rep["accuracy"]) / 100.0
    line["reported"] = value
    line["reported_n"] = rep.get("n")
    line["source"] = _source_text(rep.get("source"))
    if line.get("n"):
        line["diff"] = line["accuracy"] - value
        line["reported_in_ci"] = bool(line["ci_low"] - 1e-12 <= value <= line["ci_high"] + 1e-12)


def check_reported(suite: Any, threat_free: dict[str, bool]) -> None:
    """Every ``reported:`` entry must land in a table cell; none is dropped silently.

    ``threat_free`` maps each attack id of the suite to whether that attack is threat-free (clean).
    Raises :class:`SuiteError` naming the entry's field.
    """
    defense_ids = [d.display for d in suite.defenses]
    attacks = {a.id: a for a in suite.attacks}
    threats = {(t.norm, _eps_key(t.eps)) for t in suite.threats}
    seen: dict[tuple[Any, ...], int] = {}
    for i, r in enumerate(suite.reported):
        where = f"suite.reported.{i}"
        if r.reported_only and r.defense in defense_ids:
            raise SuiteError(f"{where}.defense: {r.defense!r} is a defense of this suite, so its row is measured",
                             hint="drop `reported_only: true` from this entry")
        if not r.reported_only and r.defense not in defense_ids:
            raise SuiteError(f"{where}.defense: {r.defense!r} is not a defense id of this suite (have {defense_ids})",
                             hint="fix the id, or add `reported_only: true` for a method this suite does not run")
        if r.attack != WORST and r.attack not in attacks:
            raise SuiteError(f"{where}.attack: {r.attack!r} is not an attack id of this suite (have {sorted(attacks)})",
                             hint=f"use an attack id, or {WORST!r} for the per-sample worst case over a defense's attacks")
        free = r.attack != WORST and threat_free.get(r.attack, False)
        if free and (r.norm is not None or r.eps is not None):
            raise SuiteError(f"{where}: attack {r.attack!r} is threat-free (clean); give no norm or eps")
        if not free:
            if r.norm is None or r.eps is None:
                raise SuiteError(f"{where}: give norm and eps (the threat the number was measured at)")
            if (r.norm.lower(), _eps_key(r.eps)) not in threats:
                raise SuiteError(f"{where}: threat {r.norm} {format_eps(r.eps)} is not one of the suite's threats",
                                 hint="add the threat to `threats:` or fix norm/eps")
        if not r.reported_only and r.attack != WORST:
            a = attacks[r.attack]
            if a.defenses is not None and r.defense not in a.defenses:
                raise SuiteError(f"{where}: attack {r.attack!r} does not run on defense {r.defense!r} (its `defenses:` list)")
            if not free and a.norms is not None and r.norm is not None and r.norm.lower() not in a.norms:
                raise SuiteError(f"{where}: attack {r.attack!r} does not run at norm {r.norm} (its `norms:` list)")
        if not r.reported_only and r.attack == WORST:
            running = [a.id for a in suite.attacks if not threat_free.get(a.id, False)
                       and (a.defenses is None or r.defense in a.defenses) and (a.norms is None or r.norm in a.norms)]
            if len(running) < 2:
                raise SuiteError(f"{where}: the worst case over attacks needs two or more attacks on defense "
                                 f"{r.defense!r} at {r.norm}; it has {running or 'none'}",
                                 hint="compare the number with that attack's id instead")
        key = (r.defense, r.attack, r.norm, _eps_key(r.eps))
        if key in seen:
            raise SuiteError(f"{where}: the same cell as suite.reported.{seen[key]}; give each number once")
        seen[key] = i


# ---- loading -------------------------------------------------------------------------------------
@dataclass
class Loaded:
    """A checked results directory: manifest, the rows of its cells, and what was ignored."""

    path: Path
    manifest: dict[str, Any]
    rows: pd.DataFrame
    ignored_rows: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def suite_name(self) -> str:
        return str(self.manifest.get("suite_name", ""))


def _check_manifest(path: Path, manifest: Any) -> dict[str, Any]:
    hint = "the manifest was edited or damaged; re-run the suite into a fresh --out"
    if not isinstance(manifest, dict):
        raise ResultsError(f"{path}/manifest.json is corrupt: not a JSON object", hint=hint)
    cells = manifest.get("cells")
    if not isinstance(cells, list) or not all(isinstance(c, dict) and isinstance(c.get("id"), str) for c in cells):
        raise ResultsError(f"{path}/manifest.json is corrupt: no list of cells with ids", hint=hint)
    if not isinstance(manifest.get("suite"), dict) or not isinstance(manifest.get("suite_name"), str):
        raise ResultsError(f"{path}/manifest.json is corrupt: no suite", hint=hint)
    return manifest


def load_results(path: str | Path) -> Loaded:
    """Open a results directory for reading (table, compare, plot); clear errors otherwise."""
    from robbench.results import ResultsDir

    rd = ResultsDir(path)
    if not rd.root.is_dir():
        raise ResultsError(f"results directory {rd.root} does not exist", hint="run `robbench run SUITE` first, or check the path")
    manifest = rd.read_manifest()
    if manifest is None:
        what = "is empty" if not any(rd.root.iterdir()) else "has no manifest.json"
        raise ResultsError(f"{rd.root} {what}: it is not a robbench results directory",
                           hint="point at the folder `robbench run` wrote, e.g. results/quickstart")
    manifest = _check_manifest(rd.root, manifest)
    df = rd.read_rows()
    cells = {c["id"] for c in manifest["cells"]}
    ours = df["cell"].isin(cells)
    ignored = int((~ours).sum())
    df = df[ours].reset_index(drop=True)
    if df.empty:
        more = f" ({ignored} rows belong to cells of another suite)" if ignored else ""
        raise ResultsError(f"{rd.root} holds no rows for the cells of suite {manifest['suite_name']!r}{more}",
                           hint="run the suite first: robbench run SUITE --out " + str(rd.root))
    notes = []
    if ignored:
        notes.append(f"{ignored} stored rows belong to cells that are not in this suite's manifest (another suite "
                     "version wrote here); they are ignored")
    status = manifest.get("status")
    n_expected = manifest.get("n_samples")
    if status not in (None, "complete"):
        notes.append(f"the run is {status}: the table shows the rows stored so far")
    if isinstance(n_expected, int):
        partial = int((df.groupby("cell").size() < n_expected).sum()) + len(cells - set(df["cell"]))
        if partial:
            notes.append(f"{partial} of {len(cells)} cells have fewer than the suite's {n_expected} samples")
    return Loaded(rd.root, manifest, df, ignored, notes)


def reported_from_suite(manifest: dict[str, Any], suite_path: str | Path) -> dict[str, Any]:
    """A copy of ``manifest`` whose reported numbers come from the suite file ``suite_path``."""
    from robbench.suite import read_suite

    suite, _ = read_suite(suite_path)
    if suite.name != manifest.get("suite_name"):
        raise ResultsError(f"{suite_path} is suite {suite.name!r}, but the results are of suite {manifest.get('suite_name')!r}",
                           hint="pass the suite file these results were run from")
    out = json.loads(json.dumps(manifest))
    out["suite"]["reported"] = [r.model_dump(mode="json") for r in suite.reported]
    return out


# ---- summary -------------------------------------------------------------------------------------
def summarize(df: pd.DataFrame, manifest: dict[str, Any], scoring: str | None = None,
              worst_case: bool = True, reported_only: bool = True) -> pd.DataFrame:
    """One line per cell, per defense x threat worst case over attacks, and reported-only rows.

    Accuracies are fractions in [0, 1]; ``reported`` / ``diff`` too. ``scoring`` overrides the
    suite's scoring of stochastic defenses evaluated with several draws.
    """
    scoring = scoring or suite_scoring(manifest)
    s = scored(df, scoring)
    entries = reported_entries(manifest)
    reported = _reported_lookup(entries)
    order = {c["id"]: i for i, c in enumerate(manifest.get("cells", []))}
    defense_order = {d.get("id") or d.get("name"): i for i, d in enumerate((manifest.get("suite") or {}).get("defenses") or [])}
    lines = []
    used: set[tuple[Any, ...]] = set()  # reported entries placed beside a measured cell
    for cell, g in s.groupby("cell", sort=False):
        first = g.iloc[0]
        n = len(g)
        k = float(g["robust"].sum())
        lo, hi = wilson(k, n)
        norm = str(first["norm"])
        line: dict[str, Any] = {
            "defense": first["defense"], "attack": first["attack"], "norm": norm,
            "eps": float(first["eps"]), "eps_label": format_eps(float(first["eps"])) if norm != "none" else "",
            "n": n, "accuracy": k / n, "ci_low": lo, "ci_high": hi,
            "clean_accuracy": float(g["clean"].mean()),
            "scoring": scoring_label(bool(first["stochastic"]), str(first["randomness"]), int(first["draws"]), scoring),
            "draws": int(first["draws"]), "gradient": first["gradient"], "randomness": first["randomness"],
            "eot": int(first["eot"]), "errors": int(g["error"].notna().sum()),
            "model_evals": float(g["model_evals"].mean()), "seconds": float(g["seconds"].mean()),
            "_order": order.get(cell, 10**6), "_dorder": defense_order.get(first["defense"], 10**6),
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
                "defense": defense, "attack": WORST, "norm": norm, "eps": float(eps), "eps_label": format_eps(float(eps)),
                "n": n, "accuracy": k / n if n else float("nan"), "ci_low": lo, "ci_high": hi,
                "clean_accuracy": float(clean.loc[wide.index].min(axis=1).mean()) if n else float("nan"),
                "scoring": f"min over {len(attacks)} attacks", "draws": int(g["draws"].max()), "gradient": "",
                "randomness": "", "eot": 0, "errors": int(g["error"].notna().sum()), "model_evals": float("nan"),
                "seconds": float("nan"), "_order": last, "_dorder": defense_order.get(defense, 10**6),
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
                "defense": r["defense"], "attack": r["attack"], "norm": norm, "eps": eps,
                "eps_label": format_eps(eps) if norm != "none" else "", "n": 0, "accuracy": float("nan"),
                "ci_low": float("nan"), "ci_high": float("nan"), "clean_accuracy": float("nan"),
                "scoring": "reported only" if r.get("reported_only") else "not measured", "draws": 0, "gradient": "", "randomness": "", "eot": 0, "errors": 0,
                "model_evals": float("nan"), "seconds": float("nan"), "_order": 10**7 + i, "_dorder": 10**7 + i,
            }
            if not r.get("reported_only"):  # a suite defense: keep it with its measured cells
                line["_dorder"] = defense_order.get(r["defense"], 10**6)
            _attach_reported(line, r)
            line["reported_only"] = bool(r.get("reported_only"))
            lines.append(line)
    out = pd.DataFrame(lines)
    if out.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SUMMARY_COLUMNS})
    for col, default in (("reported", np.nan), ("diff", np.nan), ("reported_in_ci", None), ("reported_n", None),
                         ("source", ""), ("reported_only", False)):
        if col not in out:
            out[col] = default
    out["source"] = out["source"].fillna("")
    out["reported_only"] = out["reported_only"].fillna(False).astype(bool)
    # measured defenses in suite order (cells in plan order within), then reported-only methods
    first_seen = out.groupby("defense", sort=False)["_dorder"].transform("min")
    out = (out.assign(_d=first_seen).sort_values(["_d", "_order"], kind="stable")
           .drop(columns=["_order", "_dorder", "_d"]).reset_index(drop=True))
    return out[SUMMARY_COLUMNS]


def is_missing(v: Any) -> bool:
    """True for None / NaN (the empty cells of a summary)."""
    return v is None or (isinstance(v, float) and math.isnan(v))
