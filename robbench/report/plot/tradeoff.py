"""Clean against robust accuracy over a defense's parameter sweep (e.g. eps_pur, t*)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robbench.core.budget import format_eps, parse_eps, threat_label
from robbench.report.plot.common import _colors, _mpl, _save
from robbench.suite.model import DefenseSpec
from robbench.suite.reported import WORST


# ---- trade-off over one varying defense parameter ------------------------------------------------
def _as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(parse_eps(v))
        except (ValueError, ZeroDivisionError):
            return None
    return None


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@dataclass
class Group:
    """Defenses sharing a registered name whose parameters differ in exactly one key."""

    name: str
    param: str
    members: list[tuple[str, Any]]  # (defense id, param value), sorted by value


def tradeoff_groups(defenses: Sequence[DefenseSpec]) -> tuple[list[Group], list[str]]:
    """Groups of defense settings of a suite, and why the others were left out.

    Settings of one defense name form a group for parameter ``k`` when they agree on every other
    parameter and differ in ``k`` (e.g. PurSAMERE at three eps_pur values). A suite may hold several
    such sweeps of one defense (the same eps_pur sweep at two learning rates): each is its own group,
    named with the parameters that tell the sweeps apart.
    """
    by_name: dict[str, list[DefenseSpec]] = {}
    for d in defenses:
        by_name.setdefault(d.name, []).append(d)
    groups, skipped = [], []
    for name, ds in by_name.items():
        if len(ds) < 2:
            continue
        flat = [_flatten(d.params) for d in ds]
        varying = [k for k in sorted(set().union(*flat)) if len({repr(f.get(k)) for f in flat}) > 1]
        found = [g for key in varying for g in _sweeps(name, ds, flat, key, [k for k in varying if k != key])]
        if found:
            groups.extend(found)
        else:
            skipped.append(
                f"defense {name!r}: no two of its {len(ds)} settings differ in exactly one parameter "
                f"(they differ in {varying or 'nothing'})"
            )
    return groups, skipped


def _sweeps(name: str, ds: list[DefenseSpec], flat: list[dict[str, Any]], key: str, others: list[str]) -> list[Group]:
    """The sweeps of parameter ``key``: settings equal in every other varying parameter."""
    blocks: dict[str, list[int]] = {}
    for i, f in enumerate(flat):
        blocks.setdefault(repr([f.get(k) for k in others]), []).append(i)
    # a sweep sets the parameter explicitly in every member (a default has no value to plot)
    sweeps = [
        b for b in blocks.values() if len({repr(flat[i].get(key)) for i in b}) >= 2 and all(key in flat[i] for i in b)
    ]
    # what tells the sweeps of this parameter apart (empty when there is only one)
    telling = [k for k in others if len({repr(flat[b[0]].get(k)) for b in sweeps}) > 1]
    out = []
    for block in sweeps:
        members = [(ds[i].display, flat[i].get(key)) for i in block]
        nums = [_as_number(v) for _, v in members]
        if all(n is not None for n in nums):
            members = [m for _, m in sorted(zip(nums, members, strict=True), key=lambda t: t[0])]  # type: ignore[arg-type, return-value]
        context = ", ".join(f"{k} {flat[block[0]].get(k, 'default')}" for k in telling)
        out.append(Group(f"{name} ({context})" if context else name, key, members))
    return out


def _value_label(v: Any) -> str:
    n = _as_number(v)
    if isinstance(v, str):
        return v
    return format_eps(n) if n is not None else str(v)


Series = tuple[np.ndarray, np.ndarray, np.ndarray]


def _series(frame: pd.DataFrame, ids: list[str]) -> Series:
    """Accuracy and CI bounds in percent, one entry per defense id (nan where it has no row)."""
    acc, lo, hi = [], [], []
    for d in ids:
        r = frame[frame["defense"] == d]
        acc.append(100 * float(r["accuracy"].iloc[0]) if len(r) else math.nan)
        lo.append(100 * float(r["ci_low"].iloc[0]) if len(r) else math.nan)
        hi.append(100 * float(r["ci_high"].iloc[0]) if len(r) else math.nan)
    return np.asarray(acc), np.asarray(lo), np.asarray(hi)


def _clean_series(rows: pd.DataFrame, ids: list[str]) -> Series:
    clean_rows = rows[rows["norm"] == "none"]
    if clean_rows.empty:  # no clean attack in the suite: the robust cells' clean accuracy
        first = rows.groupby("defense", sort=False)["clean_accuracy"].first()
        return (np.asarray([100 * first.get(d, math.nan) for d in ids]),) * 3
    return _series(clean_rows, ids)


def _robust_curves(rows: pd.DataFrame, ids: list[str]) -> list[tuple[str, Series, bool]]:
    """(label, series, is the worst case) per attacked (attack, threat)."""
    attacked = rows[rows["norm"] != "none"]
    out = []
    for key, g in attacked.groupby(["attack", "norm", "eps"], sort=False):
        attack, norm, eps = str(key[0]), str(key[1]), float(key[2])  # type: ignore[arg-type]
        label = f"{'worst case' if attack == WORST else attack}, {threat_label(norm, format_eps(eps))}"
        out.append((label, _series(g, ids), attack == WORST))
    return out


def _draw(ax1: Any, ax2: Any, xs: np.ndarray, clean: Series, curves: list[Any], values: list[Any]) -> None:
    ax1.errorbar(
        xs,
        clean[0],
        yerr=[clean[0] - clean[1], clean[2] - clean[0]],
        color="black",
        marker="s",
        lw=2,
        capsize=3,
        label="clean",
    )
    for (label, (acc, lo, hi), worst), c in zip(curves, _colors(len(curves) + 1)[1:], strict=True):
        style = {"lw": 2.2 if worst else 1.4, "ls": "-" if worst else "--"}
        ax1.errorbar(xs, acc, yerr=[acc - lo, hi - acc], color=c, marker="o", capsize=3, label=label, **style)
        ax2.plot(clean[0], acc, color=c, marker="o", **style)
        for x0, y0, v in zip(clean[0], acc, values, strict=True):
            if not (math.isnan(x0) or math.isnan(y0)):
                ax2.annotate(
                    _value_label(v), (x0, y0), textcoords="offset points", xytext=(4, 4), fontsize="x-small", color=c
                )


def plot_tradeoff(summary: pd.DataFrame, group: Group, path: Path, title: str) -> Path | None:
    """Clean and robust accuracy over the group's parameter; robust vs clean as a curve."""
    Figure = _mpl()
    ids = [m[0] for m in group.members]
    values = [m[1] for m in group.members]
    nums = [_as_number(v) for v in values]
    xs = np.asarray(nums if all(n is not None for n in nums) else range(len(values)), dtype=float)
    rows = summary[summary["defense"].isin(ids) & (summary["n"] > 0)]
    if rows.empty:
        return None
    curves = _robust_curves(rows, ids)
    fig = Figure(figsize=(11.5, 4.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    _draw(ax1, ax2, xs, _clean_series(rows, ids), curves, values)
    ax1.set_xticks(xs)
    ax1.set_xticklabels([_value_label(v) for v in values])
    ax1.set_xlabel(group.param)
    ax1.set_ylabel("accuracy % (95% CI)")
    ax1.set_title(f"clean and robust accuracy over {group.param}")
    ax1.grid(alpha=0.3)
    ax2.set_xlabel("clean accuracy %")
    ax2.set_ylabel("robust accuracy %")
    ax2.set_title("trade-off (labels: " + group.param + ")")
    ax2.grid(alpha=0.3)
    fig.suptitle(f"{title}: {group.name}, varying {group.param}")
    fig.legend(loc="outside lower center", ncol=min(4, len(curves) + 1), frameon=False, fontsize="small")
    return _save(fig, path)
