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

from pathlib import Path

import numpy as np
import pandas as pd

from robbench.core.budget import NORM_LABEL
from robbench.core.threat import NORMS, format_eps
from robbench.report.plot.common import MARKERS, _colors, _mpl, _save
from robbench.suite.reported import WORST


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
                ax.plot(
                    x,
                    y,
                    marker=MARKERS[k % len(MARKERS)] if main else ".",
                    ms=max(4.0, 9.0 - 1.2 * k) if main else 4,
                    lw=2.2 if main else 0.9,
                    ls="-" if main else "--",
                    color=colors[d],
                    alpha=1.0 if main else 0.6,
                    label=d if main else None,
                )
                if main:
                    ax.fill_between(x, lo, hi, color=colors[d], alpha=0.15, lw=0)
                elif len(attacks) <= 5 and panel["defense"].nunique() <= 2:
                    ax.annotate(
                        attack,
                        (x[-1], y[-1]),
                        textcoords="offset points",
                        xytext=(-3, 3),
                        ha="right",
                        fontsize="xx-small",
                        color=colors[d],
                        alpha=0.8,
                    )
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
