"""Row check ``draws-not-converged``: a stochastic defense's worst-of-m accuracy still falling at m.

A cell of a stochastic defense is scored worst of its m judge draws: a sample counts as robust only if
every draw classifies it right. That number falls as m grows, and a defense whose samples are right only
most of the time keeps losing accuracy with every draw: an attacker who can submit again gets the lower
number. From the stored draws (``k_i`` of the ``m`` right for sample i) the worst-of-j accuracy for every
``j <= m`` is estimated without bias, as the chance that j draws picked from the m are all right:
``mean_i C(k_i, j) / C(m, j)``. When the last draw still removes at least :data:`DROP_FLAG` points
(worst of m-1 minus worst of m), more draws would likely lower the number further, and the defense is
flagged with its steepest cell.

Measured (benchmarks/RESULTS.md, "Seed variance"): on 128 digits ADP's BPDA10-det cell read 66.1 / 57.4 /
51.6 % at 2 / 3 / 4 draws, and its per-sample worst case over 4 suite seeds (16 draws) was 24.2 %.
"""

from __future__ import annotations

from math import comb
from typing import Any

import pandas as pd

from robbench.core.budget import format_eps, threat_label
from robbench.run.checks.records import record

Record = dict[str, Any]

#: points the last judge draw may still remove before the defense is flagged
DROP_FLAG = 1.0


def worst_of_curve(draws: list[list[bool]]) -> list[float]:
    """Accuracy (%) scored worst of j draws, j = 1..m (m: the fewest draws of any sample), unbiased."""
    m = min(len(d) for d in draws)
    right = [sum(bool(v) for v in d[:m]) for d in draws]
    return [100.0 * sum(comb(k, j) for k in right) / (comb(m, j) * len(right)) for j in range(1, m + 1)]


def _cell_drops(g: pd.DataFrame) -> list[tuple[float, str, list[float]]]:
    """(drop of the last draw, cell label, curve) per cell of one defense (clean included) with >= 2 draws."""
    out = []
    for key, c in g.groupby(["attack", "norm", "eps"], sort=False, dropna=False):  # clean: no eps
        attack, norm, eps = str(key[0]), str(key[1]), key[2]
        draws = [list(d) for d in c["adv_correct_draws"] if d is not None and len(d) > 0]
        if not draws or min(len(d) for d in draws) < 2:
            continue
        curve = worst_of_curve(draws)
        label = attack if norm == "none" else f"{attack} / {threat_label(norm, format_eps(float(eps)))}"  # type: ignore[arg-type]
        out.append((curve[-2] - curve[-1], label, curve))
    return out


def draws_trend_check(df: pd.DataFrame) -> list[Record]:
    """One record per stochastic defense whose cells were judged on >= 2 draws: flag when any cell's
    worst-of-m accuracy still drops by >= :data:`DROP_FLAG` points with its last draw."""
    ok_rows = df["error"].isna() if "error" in df else pd.Series(True, index=df.index)
    judged = df[df["stochastic"].astype(bool) & ok_rows]
    out = []
    for defense, g in judged.groupby("defense", sort=False):
        drops = _cell_drops(g)
        if not drops:
            continue
        drop, label, curve = max(drops, key=lambda t: t[0])
        m = len(curve)
        steep = sum(d >= DROP_FLAG for d, _, _ in drops)
        flagged = drop >= DROP_FLAG
        message = (
            f"{label}: worst of {m - 1} draws {curve[-2]:.1f} %, of {m} {curve[-1]:.1f} % (the last draw removed "
            f"{drop:.1f} points; {steep} of {len(drops)} cells >= {DROP_FLAG:g}): more judge draws, or an attacker "
            f"who can submit again, would likely lower these numbers; raise evaluation.draws"
            if flagged
            else f"the last of {m} judge draws removed at most {drop:.1f} points in any cell"
        )
        status = "flag" if flagged else "ok"
        out.append(record("draws-not-converged", status, str(defense), message, drop=round(drop, 2), draws=m))
    return out
