"""Refusals of evaluations that cannot be judged honestly, before any compute.

robbench's first rule is that no number may come out higher than the evaluation supports. Three
combinations are refused by :func:`check_honest` with a message naming the attack and the fix:

- a stochastic defense attacked with fresh randomness and judged on fewer than
  :data:`~robbench.suite.model.MIN_HONEST_DRAWS` draws (one lucky draw can hide a broken point),
  unless ``evaluation.overrides`` holds ``few-draws``;
- a headline scoring other than ``worst`` for such a defense (single, mean and majority each count a
  point robust that some draw gets wrong), unless ``overrides`` holds ``scoring``;
- ``randomness: det`` with a third-party attack run in ``batching: batch`` mode: the library draws
  the defense's randomness for the whole batch from one seed, so the attacker cannot hold the judge's
  per-sample seeds; not overridable;
- the cascade with ``mean`` scoring (its last accuracy would not be the worst case over its attacks).

An override is recorded in the manifest (the resolved suite) and shown beside the affected cells.
"""

from __future__ import annotations

from typing import Any

from robbench.errors import SuiteError
from robbench.suite.model import MIN_HONEST_DRAWS, AttackSpec, DefenseSpec, Suite


def _targets(suite: Suite, a: AttackSpec) -> list[DefenseSpec]:
    return [d for d in suite.defenses if a.defenses is None or d.display in a.defenses]


def _fresh_stochastic(suite: Suite, defenses: dict[str, Any], attacks: dict[str, Any]) -> list[tuple[str, str]]:
    """(attack id, defense id) of every cell judged on fresh draws of a stochastic defense."""
    out = []
    for a in suite.attacks:
        if getattr(attacks.get(a.id), "threat_free", False):
            continue  # the clean cell: no attack to flatter, judged like the others
        for d in _targets(suite, a):
            if getattr(defenses.get(d.display), "stochastic", False) and a.randomness == "fresh":
                out.append((a.id, d.display))
    return out


def _names(pairs: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"{a} on {d}" for a, d in pairs[:3])
    return shown + (f" and {len(pairs) - 3} more" if len(pairs) > 3 else "")


def check_draws(suite: Suite, defenses: dict[str, Any], attacks: dict[str, Any]) -> None:
    """Too few judge draws, or a flattering headline scoring, on a stochastic defense."""
    ev, pairs = suite.evaluation, _fresh_stochastic(suite, defenses, attacks)
    if not pairs:
        return
    if ev.judge_draws < MIN_HONEST_DRAWS and "few-draws" not in ev.overrides:
        raise SuiteError(
            f"suite.evaluation.draws: {ev.judge_draws} judge draw(s) of a stochastic defense ({_names(pairs)}); "
            f"fewer than {MIN_HONEST_DRAWS} can score one lucky draw as robust",
            hint=f"remove `draws:` (default {MIN_HONEST_DRAWS}) or set draws >= {MIN_HONEST_DRAWS}; to keep it "
            "anyway add `overrides: [few-draws]` under evaluation (recorded and flagged)",
        )
    if ev.scoring != "worst" and "scoring" not in ev.overrides:
        raise SuiteError(
            f"suite.evaluation.scoring: {ev.scoring!r} headline for a stochastic defense ({_names(pairs)}) counts "
            "points robust that some draw gets wrong",
            hint="remove `scoring:` (default worst; `robbench table --scoring ...` shows the others from the same "
            "rows), or add `overrides: [scoring]` under evaluation (recorded and shown)",
        )


def check_det_batching(suite: Suite, defenses: dict[str, Any]) -> None:
    """``randomness: det`` cannot reach a library's batch-mode calls."""
    for a in suite.attacks:
        if a.randomness != "det" or (a.params or {}).get("batching") != "batch":
            continue
        stochastic = [d.display for d in _targets(suite, a) if getattr(defenses.get(d.display), "stochastic", False)]
        if stochastic:
            raise SuiteError(
                f"attack {a.id}: randomness det with batching: batch on stochastic defense(s) "
                f"{', '.join(stochastic)}: the library draws one seed for the whole batch, so the attack cannot "
                "know the per-sample seeds the judge uses",
                hint=f"use batching: sample for attack {a.id} (exact det semantics), or randomness: fresh with EoT",
            )


def check_cascade_scoring(suite: Suite) -> None:
    """The cascade skips points an earlier attack broke; with ``mean`` scoring a point is partly broken, so
    the last attack's accuracy would not be the per-sample worst case over the attacks."""
    if suite.evaluation.cascade and suite.evaluation.scoring == "mean":
        raise SuiteError(
            "suite.evaluation: cascade with scoring mean: the cascade's last accuracy is the worst case over its "
            "attacks only for 0/1 scores (worst, single, majority)",
            hint="use scoring: worst (default) with the cascade, or cascade: false",
        )


def check_honest(suite: Suite, defenses: dict[str, Any], attacks: dict[str, Any]) -> None:
    """All refusals of this module (see the module docstring)."""
    check_cascade_scoring(suite)
    check_det_batching(suite, defenses)
    check_draws(suite, defenses, attacks)
