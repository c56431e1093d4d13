"""Robust accuracy against the budget: one line per defense and attack, with Wilson CIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robbench.core.budget import NORM_LABEL, NORMS, format_eps
from robbench.report.plot.common import MARKERS, _colors, _mpl, _save, line_label
from robbench.suite.reported import WORST


def _curve(rows: pd.DataFrame, clean: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """x, y, lo, hi of one attack's curve in percent, with the clean accuracy at eps = 0."""
    g = rows.sort_values("eps")
    x, y = g["eps"].to_numpy(), 100 * g["accuracy"].to_numpy()
    lo, hi = 100 * g["ci_low"].to_numpy(), 100 * g["ci_high"].to_numpy()
    if len(clean):
        c = clean.iloc[0]
        x, y = np.r_[0.0, x], np.r_[100 * c["accuracy"], y]
        lo, hi = np.r_[100 * c["ci_low"], lo], np.r_[100 * c["ci_high"], hi]
    return x, y, lo, hi


def _draw_defense(ax: Any, panel: pd.DataFrame, clean: pd.DataFrame, d: str, k: int, color: Any) -> bool:
    """One defense's curves in one panel; True when it has several attacks (worst case drawn thick)."""
    rows = panel[panel["defense"] == d]
    attacks = list(dict.fromkeys(rows["attack"]))
    several = len([a for a in attacks if a != WORST]) > 1
    singles = [a for a in attacks if a != WORST]
    for attack in attacks:
        these = rows[rows["attack"] == attack]
        x, y, lo, hi = _curve(these, clean)
        main = attack == WORST or not several
        name = (
            f"{d}: worst case over {len(singles)} attacks" if attack == WORST else line_label(d, attack, these.iloc[0])
        )
        ax.plot(  # distinct markers, larger first, so identical curves stay visible
            x,
            y,
            marker=MARKERS[k % len(MARKERS)] if main else ".",
            ms=max(4.0, 9.0 - 1.2 * k) if main else 4,
            lw=2.2 if main else 0.9,
            ls="-" if main else "--",
            color=color,
            alpha=1.0 if main else 0.6,
            label=name if main else None,
        )
        if main:
            ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)
        elif len(attacks) <= 5 and panel["defense"].nunique() <= 2:
            ax.annotate(
                attack,
                (x[-1], y[-1]),
                textcoords="offset points",
                xytext=(-3, 3),
                ha="right",
                fontsize="xx-small",
                color=color,
                alpha=0.8,
            )
    return several


def _axes_labels(ax: Any, panel: pd.DataFrame, norm: str) -> None:
    eps_values = sorted(set(panel["eps"]))
    ax.set_xticks([0.0, *eps_values])
    ax.set_xticklabels(["0", *[format_eps(e) for e in eps_values]], rotation=30 if len(eps_values) > 4 else 0)
    ax.set_title(f"{NORM_LABEL[norm]} threat")
    ax.set_xlabel("budget eps (0 = clean)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)


def _legend(fig: Any, axes: Any, several: bool) -> None:
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:  # defenses attacked only at other norms
        for h, lbl in zip(*ax.get_legend_handles_labels(), strict=True):
            if lbl not in labels:
                handles.append(h)
                labels.append(lbl)
    if several:
        from matplotlib.lines import Line2D

        handles += [Line2D([], [], color="grey", lw=2.2), Line2D([], [], color="grey", lw=0.9, ls="--")]
        labels += ["worst case over attacks", "single attack"]
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), frameon=False, fontsize="small")


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
    several = False
    for ax, norm in zip(axes, norms, strict=True):
        panel = attacked[attacked["norm"] == norm]
        for k, d in enumerate(defenses):
            if (panel["defense"] == d).any():
                clean = measured[(measured["defense"] == d) & (measured["norm"] == "none")]
                several |= _draw_defense(ax, panel, clean, d, k, colors[d])
        _axes_labels(ax, panel, norm)
    axes[0].set_ylabel("accuracy % (95% CI shaded)")
    fig.suptitle(f"{title}: robust accuracy vs budget")
    _legend(fig, axes, several)
    return _save(fig, path)
