"""Paired comparison of two results directories, and the CI regression gate.

Cells are matched by what a reader sees, ``(defense id, attack id, norm, eps)``, and rows within a
cell by ``sample_id``, so two runs of one suite, two versions of a suite, or two suites sharing
cells can be compared; a matched cell whose configuration changed (a different cell id: other
parameters, models, seed) is flagged. Cells present on one side only are listed, never dropped.

Per cell: the accuracies of A and B on the samples both scored, the difference B - A, the
discordant pairs (samples only A gets right, only B gets right) and the exact McNemar test, i.e.
a two-sided binomial test of the discordant counts against 1/2 (``scipy.stats.binomtest``). With
mean scoring of a stochastic defense the per-sample scores are fractions; the test then counts
samples scored higher on one side (the exact sign test, which McNemar's test is for 0/1 scores).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robbench.core.budget import eps_key, format_eps
from robbench.errors import RobbenchError
from robbench.results.load import Loaded, load_results
from robbench.results.manifest import Manifest
from robbench.results.scoring import scored

KEY = ["defense", "attack", "norm", "eps_key"]


CELL_COLUMNS = [
    "defense",
    "attack",
    "norm",
    "eps",
    "eps_label",
    "same_config",
    "n",
    "n_a",
    "n_b",
    "acc_a",
    "acc_b",
    "diff",
    "a_only",
    "b_only",
    "p_value",
    "regression",
]


@dataclass
class Comparison:
    """The outcome of :func:`compare`; ``passed`` is what the CI gate checks."""

    a: Path
    b: Path
    a_suite: str
    b_suite: str
    cells: pd.DataFrame
    only_a: pd.DataFrame
    only_b: pd.DataFrame
    tolerance: float | None = None
    allow_missing: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> pd.DataFrame:
        return self.cells[self.cells["regression"]]

    @property
    def passed(self) -> bool:
        """No cell of B worse than A beyond the tolerance, and (unless allowed) no cell of A missing in B."""
        if self.tolerance is None:
            return True
        return self.regressions.empty and (self.allow_missing or self.only_a.empty)

    def verdict(self) -> str:
        if self.tolerance is None:
            return "no --tolerance given: nothing gated"
        parts = []
        if not self.regressions.empty:
            parts.append(
                f"{len(self.regressions)} cell(s) of B are worse than A by more than {self.tolerance:g} percentage points"
            )
        if not self.only_a.empty and not self.allow_missing:
            parts.append(f"{len(self.only_a)} cell(s) of A are missing in B (pass --allow-missing to accept)")
        return (
            "FAIL: " + "; ".join(parts)
            if parts
            else f"PASS: no cell of B is worse than A by more than {self.tolerance:g} percentage points"
        )

    def to_dict(self) -> dict[str, Any]:
        def records(df: pd.DataFrame) -> list[dict[str, Any]]:
            return list(json.loads(df.to_json(orient="records")))

        return {
            "a": str(self.a),
            "b": str(self.b),
            "a_suite": self.a_suite,
            "b_suite": self.b_suite,
            "tolerance": self.tolerance,
            "passed": self.passed,
            "verdict": self.verdict(),
            "cells": records(self.cells),
            "only_a": records(self.only_a),
            "only_b": records(self.only_b),
            "notes": self.notes,
        }


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 when there are none)."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    from scipy.stats import binomtest  # here, not at import: scipy.stats costs ~1.7 s to import

    return float(binomtest(a_only, n, 0.5).pvalue)


def _keyed(loaded: Loaded, scoring: str | None) -> pd.DataFrame:
    s = scored(loaded.rows, scoring or loaded.manifest.scoring)
    s["eps_key"] = [0.0 if n == "none" else eps_key(e) for n, e in zip(s["norm"], s["eps"], strict=True)]
    return s[["cell", "sample_id", "defense", "attack", "norm", "eps", "eps_key", "robust"]]


def _manifest_order(
    manifest: Manifest, base: dict[tuple[Any, ...], int], first: bool = False
) -> dict[tuple[Any, ...], int]:
    """Display key -> position in the manifest's plan (``first``: these come before ``base``)."""
    out = {} if first else dict(base)
    offset = 0 if first else len(base)
    for i, c in enumerate(manifest.cells):
        key = (c.defense, c.attack, c.norm, 0.0 if c.norm == "none" else eps_key(c.eps))
        out.setdefault(key, offset + i)
    if first:
        n = len(out)
        for k, v in base.items():
            out.setdefault(k, n + v)
    return out


def _cell_list(df: pd.DataFrame, order: dict[tuple[Any, ...], int]) -> pd.DataFrame:
    if df.empty:
        return pd.DataFrame(columns=["defense", "attack", "norm", "eps", "eps_label", "n"])
    g = df.groupby(KEY, sort=False).agg(eps=("eps", "first"), n=("sample_id", "size")).reset_index()
    g["eps_label"] = [format_eps(e) if n != "none" else "" for n, e in zip(g["norm"], g["eps"], strict=True)]
    g["_o"] = [order.get(tuple(k), 10**9) for k in g[KEY].itertuples(index=False)]
    return g.sort_values("_o", kind="stable")[["defense", "attack", "norm", "eps", "eps_label", "n"]].reset_index(
        drop=True
    )


def compare(
    a: str | Path,
    b: str | Path,
    *,
    tolerance: float | None = None,
    scoring: str | None = None,
    allow_missing: bool = False,
) -> Comparison:
    """Compare results directory B against A (the baseline), cell by cell and sample by sample.

    ``tolerance`` (percentage points): a matched cell is a regression when B's accuracy is lower
    than A's by more than this; :attr:`Comparison.passed` is False then, or when a cell of A is
    missing in B (unless ``allow_missing``). ``scoring`` overrides both suites' scoring of
    stochastic defenses. Raises :class:`~robbench.errors.ResultsError` for an empty, missing or
    corrupt directory.
    """
    if tolerance is not None and not tolerance >= 0:
        raise RobbenchError(f"--tolerance must be >= 0 percentage points, got {tolerance}")
    la, lb = load_results(a), load_results(b)
    ka, kb = _keyed(la, scoring), _keyed(lb, scoring)
    notes = _side_notes(la, lb, scoring)
    cells_a = ka.groupby(KEY, sort=False)["cell"].first()
    cells_b = kb.groupby(KEY, sort=False)["cell"].first()
    order = _manifest_order(la.manifest, _manifest_order(lb.manifest, {}), first=True)
    common = sorted((k for k in cells_a.index if k in cells_b.index), key=lambda k: order.get(k, 10**9))
    by_a, by_b = dict(list(ka.groupby(KEY, sort=False))), dict(list(kb.groupby(KEY, sort=False)))
    lines = [_paired_cell(key, by_a[key], by_b[key], bool(cells_a[key] == cells_b[key]), tolerance) for key in common]
    cells = pd.DataFrame(lines, columns=CELL_COLUMNS)
    only_a = _cell_list(ka[~ka.set_index(KEY).index.isin(common)], order)
    only_b = _cell_list(kb[~kb.set_index(KEY).index.isin(common)], order)
    notes += _pairing_notes(cells, common)
    return Comparison(
        Path(a),
        Path(b),
        la.suite_name,
        lb.suite_name,
        cells,
        only_a,
        only_b,
        tolerance=tolerance,
        allow_missing=allow_missing,
        notes=notes,
    )


def _side_notes(la: Loaded, lb: Loaded, scoring: str | None) -> list[str]:
    notes = [f"A: {n}" for n in la.notes] + [f"B: {n}" for n in lb.notes]
    if la.suite_name != lb.suite_name:
        notes.append(
            f"A is suite {la.suite_name!r} and B is suite {lb.suite_name!r}: cells are matched by "
            "defense, attack and threat ids"
        )
    if scoring is None and la.manifest.scoring != lb.manifest.scoring:
        notes.append(
            f"the suites score stochastic defenses differently (A: {la.manifest.scoring}, "
            f"B: {lb.manifest.scoring}); pass --scoring to compare like with like"
        )
    return notes


def _paired_cell(
    key: tuple[Any, ...], ga: pd.DataFrame, gb: pd.DataFrame, same: bool, tolerance: float | None
) -> dict[str, Any]:
    """One matched cell: accuracies on the samples both sides scored, discordant pairs, exact McNemar p."""
    m = ga.merge(gb, on="sample_id", suffixes=("_a", "_b"))
    ra, rb = m["robust_a"].to_numpy(), m["robust_b"].to_numpy()
    a_only, b_only = int((ra > rb).sum()), int((rb > ra).sum())
    n = len(m)
    acc_a = float(ra.mean()) if n else float("nan")
    acc_b = float(rb.mean()) if n else float("nan")
    diff = acc_b - acc_a
    eps = float(ga["eps"].iloc[0])
    return {
        "defense": key[0],
        "attack": key[1],
        "norm": key[2],
        "eps": eps,
        "eps_label": format_eps(eps) if key[2] != "none" else "",
        "same_config": same,
        "n": n,
        "n_a": len(ga),
        "n_b": len(gb),
        "acc_a": acc_a,
        "acc_b": acc_b,
        "diff": diff,
        "a_only": a_only,
        "b_only": b_only,
        "p_value": mcnemar_exact(a_only, b_only),
        "regression": bool(tolerance is not None and n > 0 and 100 * diff < -tolerance - 1e-9),
    }


def _pairing_notes(cells: pd.DataFrame, common: list[tuple[Any, ...]]) -> list[str]:
    notes = [
        f"cell {r['defense']} / {r['attack']} is in both, but they share no sample ids: nothing to compare"
        for _, r in cells.iterrows()
        if r["n"] == 0
    ]
    changed = int((~cells["same_config"]).sum()) if not cells.empty else 0
    if changed:
        notes.append(
            f"{changed} matched cell(s) changed configuration between A and B (other parameters, models "
            "or seed); marked '*'"
        )
    unpaired = int((cells["n_a"] + cells["n_b"] - 2 * cells["n"]).sum()) if not cells.empty else 0
    if unpaired:
        notes.append(f"{unpaired} rows have no partner on the other side (different samples) and are not compared")
    if not common:
        notes.append("A and B share no cell")
    return notes
