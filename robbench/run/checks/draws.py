"""Row checks of how the headline numbers were obtained.

- ``judge-draws``: per stochastic defense, every attacked cell (det or fresh) must rest on at least
  :data:`~robbench.suite.model.MIN_HONEST_DRAWS` draws scored worst-of-m; fewer draws (allowed only
  by ``overrides: [few-draws]``, or ``det-seeds-judge`` for det cells) or another headline scoring
  (``overrides: [scoring]``) is a flag.
- ``adaptive-attack``: per defense and threat, at least one attack must be adaptive (gradients or
  queries through the defense itself: full, BPDA or custom gradients, or a gradient-free attack on the
  defense). A defense attacked only gray-box or by transfer has upper bounds, not a robust accuracy
  (flag); one attacked through the defense only below the strength floor (robbench.run.strength) is
  flagged as ``adaptive (weak)``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from robbench.core.budget import format_eps, threat_label
from robbench.run.checks.records import record
from robbench.run.strength import WEAK, attack_strength
from robbench.suite.model import MIN_HONEST_DRAWS, AttackSpec, Suite

Record = dict[str, Any]


def evaluation_kind(spec: AttackSpec | None) -> str:
    """``adaptive``, ``gray-box`` or ``transfer`` (:attr:`AttackSpec.evaluation`); unknown: adaptive."""
    return spec.evaluation if spec is not None else "adaptive"


def judge_draws_check(df: pd.DataFrame, suite: Suite) -> list[Record]:
    attacked = df[df["stochastic"].astype(bool) & (df["norm"] != "none")]
    out = []
    scoring = suite.evaluation.scoring
    for defense, g in attacked.groupby("defense", sort=False):
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
            out.append(
                record("judge-draws", "ok", str(defense), f"stochastic, every cell judged worst of {draws} draws")
            )
    return out


def _kinds(g: pd.DataFrame, attacks: dict[str, AttackSpec]) -> dict[str, str | None]:
    """kind -> why weak, over the attacks of one defense x threat (:func:`robbench.run.strength.attack_strength`)."""
    out: dict[str, str | None] = {}
    g = g.assign(**{k: g.get(k, v) for k, v in (("stochastic", False), ("randomness", "none"), ("eot", 1))})
    for (attack, stochastic, randomness, eot), _ in g.groupby(["attack", "stochastic", "randomness", "eot"]):
        spec = attacks.get(str(attack))
        kind, why = (
            attack_strength(spec, stochastic=bool(stochastic), randomness=str(randomness), eot=int(str(eot)))
            if spec is not None
            else ("adaptive", None)
        )
        out.setdefault(kind, f"{attack}: {why}" if why else None)
    return out


def adaptive_attack_check(df: pd.DataFrame, suite: Suite) -> list[Record]:
    attacks = {a.id: a for a in suite.attacks}
    attacked = df[df["norm"] != "none"]
    out = []
    for key, g in attacked.groupby(["defense", "norm", "eps"], sort=False):
        defense, norm, eps = str(key[0]), str(key[1]), float(key[2])  # type: ignore[arg-type]
        kinds = _kinds(g, attacks)
        subject = f"{defense} / {threat_label(norm, format_eps(eps))}"
        if "adaptive" in kinds:
            continue
        if WEAK in kinds:
            out.append(
                record(
                    "adaptive-attack",
                    "flag",
                    subject,
                    f"attacked through the defense only below the strength floor ({kinds[WEAK]}): its worst case is "
                    "adaptive (weak), likely above the true robustness; use >= 10 steps (and EoT on a randomised "
                    "defense)",
                )
            )
            continue
        out.append(
            record(
                "adaptive-attack",
                "flag",
                subject,
                f"attacked only {' and '.join(sorted(kinds))}: its numbers are upper bounds, not a robust "
                "accuracy; add a BPDA or full-gradient attack (with EoT if it is randomised)",
            )
        )
    return out


def early_stop_check(df: pd.DataFrame, suite: Suite) -> list[Record]:
    """``library-early-stop``: cells where only ``overrides: [library-early-stop]`` let a library's
    stopping rule decide what an attack returned, although its forward is not the judge's (flag)."""
    from robbench.core import registry
    from robbench.run.honesty import early_stops

    if "library-early-stop" not in suite.evaluation.overrides:
        return []
    defenses = {d.display: registry.defenses.get(d.name) for d in suite.defenses}
    attacks = {a.id: registry.attacks.get(a.name) for a in suite.attacks}
    present = set(zip(df["attack"].astype(str), df["defense"].astype(str), strict=True))
    return [
        record(
            "library-early-stop",
            "flag",
            f"{d} / {a}",
            f"{what} decided what was returned on a target whose forward is not the judge's "
            "(overrides: library-early-stop): the number can overstate robustness",
        )
        for a, d, what in early_stops(suite, defenses, attacks)
        if (a, d) in present
    ]
