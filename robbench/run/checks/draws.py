"""Row checks of how the headline numbers were obtained.

- ``judge-draws``: per stochastic defense, every cell judged on fresh draws must rest on at least
  :data:`~robbench.suite.model.MIN_HONEST_DRAWS` draws scored worst-of-m; fewer draws (allowed only
  by ``overrides: [few-draws]``) or another headline scoring (``overrides: [scoring]``) is a flag.
- ``adaptive-attack``: per defense and threat, at least one attack must be adaptive (gradients or
  queries through the defense itself: full, BPDA or custom gradients, or a gradient-free attack on the
  defense). A defense attacked only gray-box or by transfer has upper bounds, not a robust accuracy
  (flag).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from robbench.core.budget import format_eps, threat_label
from robbench.run.checks.records import record
from robbench.suite.model import MIN_HONEST_DRAWS, AttackSpec, Suite

Record = dict[str, Any]


def evaluation_kind(spec: AttackSpec | None) -> str:
    """``adaptive``, ``gray-box`` or ``transfer`` (:attr:`AttackSpec.evaluation`); unknown: adaptive."""
    return spec.evaluation if spec is not None else "adaptive"


def judge_draws_check(df: pd.DataFrame, suite: Suite) -> list[Record]:
    fresh = df[df["stochastic"].astype(bool) & (df["randomness"] == "fresh") & (df["norm"] != "none")]
    out = []
    scoring = suite.evaluation.scoring
    for defense, g in fresh.groupby("defense", sort=False):
        draws = int(g["draws"].min())
        if draws < MIN_HONEST_DRAWS or scoring != "worst":
            why = f"{draws} judge draw(s)" if draws < MIN_HONEST_DRAWS else f"{scoring!r} headline scoring"
            out.append(
                record(
                    "judge-draws",
                    "flag",
                    str(defense),
                    f"stochastic, headline on {why} (overrides: {', '.join(suite.evaluation.overrides) or 'none'}): "
                    f"one lucky draw can count a broken point as robust; use worst of >= {MIN_HONEST_DRAWS} draws",
                    draws=draws,
                )
            )
        else:
            out.append(record("judge-draws", "ok", str(defense), f"stochastic, judged worst of {draws} fresh draws"))
    return out


def adaptive_attack_check(df: pd.DataFrame, suite: Suite) -> list[Record]:
    attacks = {a.id: a for a in suite.attacks}
    attacked = df[df["norm"] != "none"]
    out = []
    for key, g in attacked.groupby(["defense", "norm", "eps"], sort=False):
        defense, norm, eps = str(key[0]), str(key[1]), float(key[2])  # type: ignore[arg-type]
        kinds = {evaluation_kind(attacks.get(str(a))) for a in g["attack"].unique()}
        if "adaptive" not in kinds:
            out.append(
                record(
                    "adaptive-attack",
                    "flag",
                    f"{defense} / {threat_label(norm, format_eps(eps))}",
                    f"attacked only {' and '.join(sorted(kinds))}: its numbers are upper bounds, not a robust "
                    "accuracy; add a BPDA or full-gradient attack (with EoT if it is randomised)",
                )
            )
    return out
