"""PNG figures of a results directory (matplotlib, Agg; ``pip install 'robbench[plot]'``).

Kinds:

* ``eps``: robust accuracy vs budget, one panel per norm, one colour per defense; clean accuracy at
  eps = 0; with several attacks per defense, the per-sample worst case is the thick line and each
  attack a thin dashed one; shaded: 95% Wilson CI.
* ``tradeoff``: for each defense that appears with several settings of one parameter (PurSAMERE at
  three eps_pur values, read from the manifest's suite), clean and robust accuracy over that
  parameter, and robust vs clean accuracy as a curve (the papers' trade-off).
* ``trace``: the attack's loss vs iteration (rows' ``loss_trace``, median over samples with the
  inter-quartile band), one panel per threat. The runner records the loss per iteration, not the
  accuracy, so only the loss is drawn.

Every figure is written atomically (a complete PNG or none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robbench.core.budget import threat_label
from robbench.core.threat import format_eps, parse_eps
from robbench.report.plot.common import _colors, _mpl, _save
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


def tradeoff_groups(manifest: dict[str, Any]) -> tuple[list[Group], list[str]]:
    """Groups of defense settings read from the manifest's suite, and why others were left out.

    Settings of one defense name form a group for parameter ``k`` when they agree on every other
    parameter and differ in ``k`` (e.g. PurSAMERE at three eps_pur values). A suite may hold several
    such sweeps of one defense (the same eps_pur sweep at two learning rates): each is its own group,
    named with the parameters that tell the sweeps apart.
    """
    by_name: dict[str, list[dict[str, Any]]] = {}
    for d in (manifest.get("suite") or {}).get("defenses") or []:
        by_name.setdefault(d["name"], []).append(d)
    groups, skipped = [], []
    for name, ds in by_name.items():
        if len(ds) < 2:
            continue
        flat = [_flatten(d.get("params") or {}) for d in ds]
        keys = sorted(set().union(*flat))
        varying = [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1]
        found = []
        for key in varying:
            others = [k for k in varying if k != key]
            blocks: dict[str, list[int]] = {}
            for i, f in enumerate(flat):
                blocks.setdefault(repr([f.get(k) for k in others]), []).append(i)
            # a sweep sets the parameter explicitly in every member (a default has no value to plot)
            sweeps = [
                b
                for b in blocks.values()
                if len({repr(flat[i].get(key)) for i in b}) >= 2 and all(key in flat[i] for i in b)
            ]
            # what tells the sweeps of this parameter apart (empty when there is only one)
            telling = [k for k in others if len({repr(flat[b[0]].get(k)) for b in sweeps}) > 1]
            for block in sweeps:
                members = [(ds[i].get("id") or ds[i]["name"], flat[i].get(key)) for i in block]
                nums = [_as_number(v) for _, v in members]
                if all(n is not None for n in nums):
                    members = [m for _, m in sorted(zip(nums, members, strict=True), key=lambda t: t[0])]  # type: ignore[arg-type, return-value]
                context = ", ".join(f"{k} {flat[block[0]].get(k, 'default')}" for k in telling)
                found.append(Group(f"{name} ({context})" if context else name, key, members))
        if found:
            groups.extend(found)
        else:
            skipped.append(
                f"defense {name!r}: no two of its {len(ds)} settings differ in exactly one parameter "
                f"(they differ in {varying or 'nothing'})"
            )
    return groups, skipped


def _value_label(v: Any) -> str:
    n = _as_number(v)
    if isinstance(v, str):
        return v
    return format_eps(n) if n is not None else str(v)


def plot_tradeoff(summary: pd.DataFrame, group: Group, path: Path, title: str) -> Path | None:
    """Clean and robust accuracy over the group's parameter; robust vs clean as a curve."""
    Figure = _mpl()
    ids = [m[0] for m in group.members]
    values = [m[1] for m in group.members]
    nums = [_as_number(v) for v in values]
    numeric = all(n is not None for n in nums)
    xs = np.asarray(nums if numeric else range(len(values)), dtype=float)
    rows = summary[summary["defense"].isin(ids) & (summary["n"] > 0)]
    if rows.empty:
        return None

    def series(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        acc, lo, hi = [], [], []
        for d in ids:
            r = frame[frame["defense"] == d]
            acc.append(100 * float(r["accuracy"].iloc[0]) if len(r) else math.nan)
            lo.append(100 * float(r["ci_low"].iloc[0]) if len(r) else math.nan)
            hi.append(100 * float(r["ci_high"].iloc[0]) if len(r) else math.nan)
        return np.asarray(acc), np.asarray(lo), np.asarray(hi)

    clean_rows = rows[rows["norm"] == "none"]
    if clean_rows.empty:  # no clean attack in the suite: the robust cells' clean accuracy
        first = rows.groupby("defense", sort=False)["clean_accuracy"].first()
        clean = (np.asarray([100 * first.get(d, math.nan) for d in ids]),) * 3
    else:
        clean = series(clean_rows)
    curves = []
    attacked = rows[rows["norm"] != "none"]
    for (attack, norm, eps), g in attacked.groupby(["attack", "norm", "eps"], sort=False):
        curves.append(
            (
                f"{'worst case' if attack == WORST else attack}, {threat_label(norm, format_eps(eps))}",
                series(g),
                attack == WORST,
            )
        )
    fig = Figure(figsize=(11.5, 4.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    colors = _colors(len(curves) + 1)
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
    for (label, (acc, lo, hi), worst), c in zip(curves, colors[1:], strict=True):
        ax1.errorbar(
            xs,
            acc,
            yerr=[acc - lo, hi - acc],
            color=c,
            marker="o",
            lw=2.2 if worst else 1.4,
            ls="-" if worst else "--",
            capsize=3,
            label=label,
        )
        ax2.plot(clean[0], acc, color=c, marker="o", lw=2.2 if worst else 1.4, ls="-" if worst else "--")
        for x0, y0, v in zip(clean[0], acc, values, strict=True):
            if not (math.isnan(x0) or math.isnan(y0)):
                ax2.annotate(
                    _value_label(v), (x0, y0), textcoords="offset points", xytext=(4, 4), fontsize="x-small", color=c
                )
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
