"""Attack loss over steps, from the per-row traces a run stores."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from robbench.core.budget import NORMS, format_eps, threat_label
from robbench.report.plot.common import _colors, _mpl, _save, line_label


# ---- loss traces ---------------------------------------------------------------------------------
def plot_trace(
    df: pd.DataFrame, path: Path, title: str, max_panels: int = 9, cells: list[str] | None = None
) -> Path | None:
    """Median attack loss vs iteration (inter-quartile band), a panel per threat, a line per defense x attack.

    Each defense x attack line has its own colour, so the bands of two attacks on one defense stay apart (a
    defense's attacks also differ in line style); the legend names defense, attack and protocol."""
    Figure = _mpl()
    has = df[df["loss_trace"].map(lambda t: t is not None and len(t) > 0)]
    if has.empty:
        return None
    order = {c: i for i, c in enumerate(cells or [])}
    has = has.assign(_o=has["cell"].map(lambda c: order.get(c, 10**6))).sort_values(["_o", "sample_id"], kind="stable")
    norm_rank = {n: i for i, n in enumerate(NORMS)}
    threats = sorted(
        dict.fromkeys(zip(has["norm"], has["eps"], strict=True)), key=lambda t: (norm_rank.get(t[0], 9), t[1])
    )
    threats = threats[:max_panels]
    cols = min(3, len(threats))
    nrows = math.ceil(len(threats) / cols)
    fig = Figure(figsize=(4.4 * cols, 3.4 * nrows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
    pairs = list(dict.fromkeys(zip(has["defense"], has["attack"], strict=True)))
    attacks = list(dict.fromkeys(has["attack"]))
    colors = dict(zip(pairs, _colors(len(pairs)), strict=True))
    styles = ["-", "--", ":", "-."]
    labelled: set[tuple[str, str]] = set()
    for ax, (norm, eps) in zip(axes, threats, strict=False):
        panel = has[(has["norm"] == norm) & (has["eps"] == eps)]
        for (d, a), g in panel.groupby(["defense", "attack"], sort=False):
            length = min(len(t) for t in g["loss_trace"])
            arr = np.stack([np.asarray(t[:length], dtype=float) for t in g["loss_trace"]])
            it = np.arange(1, length + 1)
            q1, q3 = np.nanpercentile(arr, [25, 75], axis=0)
            label = None if (d, a) in labelled else line_label(str(d), str(a), g.iloc[0])
            labelled.add((d, a))
            ls = styles[attacks.index(a) % len(styles)]
            ax.plot(it, np.nanmedian(arr, axis=0), color=colors[(d, a)], ls=ls, lw=1.6, label=label)
            ax.fill_between(it, q1, q3, color=colors[(d, a)], alpha=0.15, lw=0)
        ax.set_title(threat_label(norm, format_eps(eps)))
        ax.set_xlabel("iteration")
        ax.set_ylabel("attack loss (median, IQR)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    for ax in axes[len(threats) :]:
        ax.set_visible(False)
    fig.suptitle(f"{title}: attack loss per iteration")
    fig.legend(loc="outside lower center", ncol=min(3, len(labelled)), frameon=False, fontsize="small")
    return _save(fig, path)
