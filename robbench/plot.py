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

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robbench.errors import RobbenchError
from robbench.pivot import NORM_LABEL, threat_label
from robbench.summary import WORST, load_results, summarize
from robbench.threat import NORMS, format_eps, parse_eps

KINDS = ("eps", "tradeoff", "trace")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


@dataclass
class PlotResult:
    """The PNGs written, and the kinds that had nothing to draw (with the reason)."""

    paths: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _mpl() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise RobbenchError("plotting needs matplotlib, which is not installed",
                            hint="pip install 'robbench[plot]'") from None
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure


def _save(fig: Any, path: Path) -> Path:
    from robbench.io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_") or "x"


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


# ---- robust accuracy vs eps ----------------------------------------------------------------------
def plot_eps(summary: pd.DataFrame, path: Path, title: str) -> Path | None:
    """Robust accuracy vs eps per defense, a panel per norm."""
    Figure = _mpl()
    measured = summary[summary["n"] > 0]
    attacked = measured[measured["norm"] != "none"]
    if attacked.empty:
        return None
    norms = [n for n in NORMS if n in set(attacked["norm"])]
    defenses = list(dict.fromkeys(attacked["defense"]))
    colors = dict(zip(defenses, _colors(len(defenses)), strict=True))
    fig = Figure(figsize=(4.6 * len(norms), 4.2), layout="constrained")
    axes = fig.subplots(1, len(norms), squeeze=False)[0]
    any_several = False
    for ax, norm in zip(axes, norms, strict=True):
        panel = attacked[attacked["norm"] == norm]
        for d in defenses:
            rows = panel[panel["defense"] == d]
            if rows.empty:
                continue
            clean = measured[(measured["defense"] == d) & (measured["norm"] == "none")]
            attacks = list(dict.fromkeys(rows["attack"]))
            several = len([a for a in attacks if a != WORST]) > 1
            any_several |= several
            for attack in attacks:
                g = rows[rows["attack"] == attack].sort_values("eps")
                x, y = g["eps"].to_numpy(), 100 * g["accuracy"].to_numpy()
                lo, hi = 100 * g["ci_low"].to_numpy(), 100 * g["ci_high"].to_numpy()
                if len(clean):
                    x, y = np.r_[0.0, x], np.r_[100 * clean["accuracy"].iloc[0], y]
                    lo, hi = np.r_[100 * clean["ci_low"].iloc[0], lo], np.r_[100 * clean["ci_high"].iloc[0], hi]
                main = attack == WORST or not several
                k = defenses.index(d)  # distinct markers, larger first, so identical curves stay visible
                ax.plot(x, y, marker=MARKERS[k % len(MARKERS)] if main else ".", ms=max(4.0, 9.0 - 1.2 * k) if main else 4,
                        lw=2.2 if main else 0.9, ls="-" if main else "--", color=colors[d], alpha=1.0 if main else 0.6,
                        label=d if main else None)
                if main:
                    ax.fill_between(x, lo, hi, color=colors[d], alpha=0.15, lw=0)
                elif len(attacks) <= 5 and panel["defense"].nunique() <= 2:
                    ax.annotate(attack, (x[-1], y[-1]), textcoords="offset points", xytext=(-3, 3), ha="right",
                                fontsize="xx-small", color=colors[d], alpha=0.8)
        eps_values = sorted(set(panel["eps"]))
        ax.set_xticks([0.0, *eps_values])
        ax.set_xticklabels(["0", *[format_eps(e) for e in eps_values]], rotation=30 if len(eps_values) > 4 else 0)
        ax.set_title(f"{NORM_LABEL[norm]} threat")
        ax.set_xlabel("budget eps (0 = clean)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy % (95% CI shaded)")
    fig.suptitle(f"{title}: robust accuracy vs budget")
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:  # defenses attacked only at other norms
        for h, lbl in zip(*ax.get_legend_handles_labels(), strict=True):
            if lbl not in labels:
                handles.append(h)
                labels.append(lbl)
    if any_several:
        from matplotlib.lines import Line2D

        handles += [Line2D([], [], color="grey", lw=2.2), Line2D([], [], color="grey", lw=0.9, ls="--")]
        labels += ["worst case over attacks", "single attack"]
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), frameon=False, fontsize="small")
    return _save(fig, path)


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
            sweeps = [b for b in blocks.values()
                      if len({repr(flat[i].get(key)) for i in b}) >= 2 and all(key in flat[i] for i in b)]
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
            skipped.append(f"defense {name!r}: no two of its {len(ds)} settings differ in exactly one parameter "
                           f"(they differ in {varying or 'nothing'})")
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
        curves.append((f"{'worst case' if attack == WORST else attack}, {threat_label(norm, format_eps(eps))}", series(g),
                       attack == WORST))
    fig = Figure(figsize=(11.5, 4.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    colors = _colors(len(curves) + 1)
    ax1.errorbar(xs, clean[0], yerr=[clean[0] - clean[1], clean[2] - clean[0]], color="black", marker="s", lw=2,
                 capsize=3, label="clean")
    for (label, (acc, lo, hi), worst), c in zip(curves, colors[1:], strict=True):
        ax1.errorbar(xs, acc, yerr=[acc - lo, hi - acc], color=c, marker="o", lw=2.2 if worst else 1.4,
                     ls="-" if worst else "--", capsize=3, label=label)
        ax2.plot(clean[0], acc, color=c, marker="o", lw=2.2 if worst else 1.4, ls="-" if worst else "--")
        for x0, y0, v in zip(clean[0], acc, values, strict=True):
            if not (math.isnan(x0) or math.isnan(y0)):
                ax2.annotate(_value_label(v), (x0, y0), textcoords="offset points", xytext=(4, 4), fontsize="x-small", color=c)
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


# ---- loss traces ---------------------------------------------------------------------------------
def plot_trace(df: pd.DataFrame, path: Path, title: str, max_panels: int = 9,
               cells: list[dict[str, Any]] | None = None) -> Path | None:
    """Median attack loss vs iteration (inter-quartile band), a panel per threat, a line per defense x attack."""
    Figure = _mpl()
    has = df[df["loss_trace"].map(lambda t: t is not None and len(t) > 0)]
    if has.empty:
        return None
    order = {c["id"]: i for i, c in enumerate(cells or [])}
    has = has.assign(_o=has["cell"].map(lambda c: order.get(c, 10**6))).sort_values(["_o", "sample_id"], kind="stable")
    norm_rank = {n: i for i, n in enumerate(NORMS)}
    threats = sorted(dict.fromkeys(zip(has["norm"], has["eps"], strict=True)), key=lambda t: (norm_rank.get(t[0], 9), t[1]))
    threats = threats[:max_panels]
    cols = min(3, len(threats))
    nrows = math.ceil(len(threats) / cols)
    fig = Figure(figsize=(4.4 * cols, 3.4 * nrows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
    defenses = list(dict.fromkeys(has["defense"]))
    attacks = list(dict.fromkeys(has["attack"]))
    colors = dict(zip(defenses, _colors(len(defenses)), strict=True))
    styles = ["-", "--", ":", "-."]
    labelled: set[tuple[str, str]] = set()
    for ax, (norm, eps) in zip(axes, threats, strict=False):
        panel = has[(has["norm"] == norm) & (has["eps"] == eps)]
        for (d, a), g in panel.groupby(["defense", "attack"], sort=False):
            length = min(len(t) for t in g["loss_trace"])
            arr = np.stack([np.asarray(t[:length], dtype=float) for t in g["loss_trace"]])
            it = np.arange(1, length + 1)
            q1, q3 = np.nanpercentile(arr, [25, 75], axis=0)
            label = None if (d, a) in labelled else f"{d}: {a}"
            labelled.add((d, a))
            ls = styles[attacks.index(a) % len(styles)]
            ax.plot(it, np.nanmedian(arr, axis=0), color=colors[d], ls=ls, lw=1.6, label=label)
            ax.fill_between(it, q1, q3, color=colors[d], alpha=0.12, lw=0)
        ax.set_title(threat_label(norm, format_eps(eps)))
        ax.set_xlabel("iteration")
        ax.set_ylabel("attack loss (median, IQR)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    for ax in axes[len(threats):]:
        ax.set_visible(False)
    fig.suptitle(f"{title}: attack loss per iteration")
    fig.legend(loc="outside lower center", ncol=min(4, len(labelled)), frameon=False, fontsize="small")
    return _save(fig, path)


# ---- entry point ---------------------------------------------------------------------------------
def plot_results(results_dir: str | Path, *, out: str | Path | None = None, kinds: Sequence[str] = ("all",),
                 scoring: str | None = None) -> PlotResult:
    """Draw the requested kinds (``eps``, ``tradeoff``, ``trace`` or ``all``) into ``out``
    (default ``RESULTS/plots``). A kind asked for by name that has nothing to draw is an error;
    with ``all`` it is skipped and listed in :attr:`PlotResult.skipped`."""
    wanted = list(KINDS) if "all" in kinds else list(dict.fromkeys(kinds))
    bad = [k for k in wanted if k not in KINDS]
    if bad:
        raise RobbenchError(f"unknown plot kind(s) {bad}", hint=f"use {', '.join(KINDS)} or all")
    _mpl()
    loaded = load_results(results_dir)
    summary = summarize(loaded.rows, loaded.manifest, scoring=scoring, reported_only=False)
    folder = Path(out) if out is not None else loaded.path / "plots"
    title = loaded.suite_name
    res = PlotResult()
    reasons: dict[str, str] = {}
    if "eps" in wanted:
        p = plot_eps(summary, folder / "robust_vs_eps.png", title)
        if p:
            res.paths.append(p)
        else:
            reasons["eps"] = "no attacked cells (only clean)"
    if "tradeoff" in wanted:
        groups, why = tradeoff_groups(loaded.manifest)
        made = [plot_tradeoff(summary, g, folder / f"tradeoff_{_slug(g.name)}_{_slug(g.param)}.png", title) for g in groups]
        res.paths += [p for p in made if p]
        if not any(made):
            reasons["tradeoff"] = ("no defense appears with several settings of one parameter (e.g. pursamere at "
                                   "three eps_pur values)" + (f"; {'; '.join(why)}" if why else ""))
    if "trace" in wanted:
        p = plot_trace(loaded.rows, folder / "loss_trace.png", title, cells=loaded.manifest.get("cells"))
        if p:
            res.paths.append(p)
        else:
            reasons["trace"] = "no row recorded a loss trace (the attacks keep none)"
    res.skipped = [f"{k}: {v}" for k, v in reasons.items()]
    if reasons and "all" not in kinds:
        raise RobbenchError(f"nothing to draw for {', '.join(reasons)}: {'; '.join(reasons.values())}",
                            hint="choose another --kind, or run a suite that has what this plot shows")
    if not res.paths:
        raise RobbenchError(f"nothing to draw for {loaded.path}: {'; '.join(res.skipped)}")
    return res
