"""Refusals of evaluations that cannot be judged honestly, before any compute.

robbench's first rule is that no number may come out higher than the evaluation supports. Three
combinations are refused by :func:`check_honest` with a message naming the attack and the fix:

- a stochastic defense attacked (det or fresh randomness) and judged on fewer than
  :data:`~robbench.suite.model.MIN_HONEST_DRAWS` draws (one lucky draw can hide a broken point),
  unless ``evaluation.overrides`` holds ``few-draws``; a ``det`` attack is judged on the attacker's
  seeds (draw 0) and fresh draws, one draw on its seeds alone only under ``det-seeds-judge``;
- a headline scoring other than ``worst`` for such a defense (single, mean and majority each count a
  point robust that some draw gets wrong), unless ``overrides`` holds ``scoring``;
- ``randomness: det`` with a third-party attack run in ``batching: batch`` mode: the library draws
  the defense's randomness for the whole batch from one seed, so the attacker cannot hold the judge's
  per-sample seeds; not overridable;
- the cascade with ``mean`` scoring (its last accuracy would not be the worst case over its attacks);
- an attack that keeps a third-party library's stopping rule (FAB in AutoAttack, the torchattacks
  adapter) where its forward is not the judge's (fresh draws of a stochastic defense, gray-box,
  transfer, custom gradients), unless ``overrides`` holds ``library-early-stop``.

An override is recorded in the manifest (the resolved suite) and shown beside the affected cells.
"""

from __future__ import annotations

from typing import Any

from robbench.core.components import parse_params
from robbench.errors import SuiteError
from robbench.suite.model import MIN_HONEST_DRAWS, AttackSpec, DefenseSpec, Suite


def _targets(suite: Suite, a: AttackSpec) -> list[DefenseSpec]:
    return [d for d in suite.defenses if a.defenses is None or d.display in a.defenses]


def _stochastic_cells(suite: Suite, defenses: dict[str, Any], attacks: dict[str, Any]) -> list[tuple[str, str]]:
    """(attack id, defense id) of every attacked cell of a stochastic defense, det or fresh: each is judged on
    the suite's draws."""
    out = []
    for a in suite.attacks:
        if getattr(attacks.get(a.id), "threat_free", False):
            continue  # the clean cell: no attack to flatter, judged like the others
        for d in _targets(suite, a):
            if getattr(defenses.get(d.display), "stochastic", False):
                out.append((a.id, d.display))
    return out


def _names(pairs: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"{a} on {d}" for a, d in pairs[:3])
    return shown + (f" and {len(pairs) - 3} more" if len(pairs) > 3 else "")


def check_draws(suite: Suite, defenses: dict[str, Any], attacks: dict[str, Any]) -> None:
    """Too few judge draws, or a flattering headline scoring, on a stochastic defense."""
    ev, pairs = suite.evaluation, _stochastic_cells(suite, defenses, attacks)
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


def judged_forward(a: AttackSpec, stochastic: bool, uses_gradients: bool) -> bool:
    """The attack's forward is the judge's: the real defense (full or BPDA gradients, or queries), with no
    randomness or the judge's det seeds (:attr:`robbench.attacks.target.Target.judged_forward`)."""
    through = (a.gradient in ("full", "bpda") or not uses_gradients) and a.surrogate is None
    return through and (not stochastic or a.randomness == "det")


def early_stops(suite: Suite, defenses: dict[str, Any], attacks: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(attack id, defense id, what stops early) of every cell where a library stopping rule would decide
    what is returned although the attack's forward is not the judge's."""
    out = []
    for a in suite.attacks:
        cls = attacks.get(a.id)
        if cls is None or getattr(cls, "threat_free", False):
            continue
        what = cls.stops_early(parse_params(cls.Params, a.params, f"attack {a.id}"))
        if not what:
            continue
        for d in _targets(suite, a):
            if not judged_forward(a, bool(getattr(defenses.get(d.display), "stochastic", False)), cls.uses_gradients):
                out.append((a.id, d.display, what))
    return out


def check_early_stop(suite: Suite, defenses: dict[str, Any], attacks: dict[str, Any]) -> None:
    """A library's first-success rule where a success the attack sees need not be the judge's."""
    if "library-early-stop" in suite.evaluation.overrides:
        return
    found = early_stops(suite, defenses, attacks)
    if found:
        a, d, what = found[0]
        raise SuiteError(
            f"attack {a} on {d}: {what} keeps the library's stopping rule, but its forward is not the judge's "
            "(randomised draws, gray-box, transfer or custom gradients): a point it 'breaks' on one forward, or "
            "leaves as the clean image, flatters the defense",
            hint="use robbench's pgd, square or autoattack without fab/fab-t there (every point attacked, best "
            "iterate kept), or add `overrides: [library-early-stop]` under evaluation (recorded and flagged)",
        )


def check_honest(suite: Suite, defenses: dict[str, Any], attacks: dict[str, Any]) -> None:
    """All refusals of this module (see the module docstring)."""
    check_cascade_scoring(suite)
    check_early_stop(suite, defenses, attacks)
    check_det_batching(suite, defenses)
    check_draws(suite, defenses, attacks)
