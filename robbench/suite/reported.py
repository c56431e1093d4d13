"""Validation of a suite's ``reported:`` entries: every published number must land in a table cell.

Plain data only (no torch); run by :func:`robbench.run.validate.check_suite` before any compute.
"""

from __future__ import annotations

from collections.abc import Mapping

from robbench.core.budget import eps_key, format_eps
from robbench.errors import SuiteError
from robbench.suite.model import Reported, Suite

#: the attack id of the per-sample worst case over a defense's attacks at one threat
WORST = "worst-case"


def check_reported(suite: Suite, threat_free: Mapping[str, bool]) -> None:
    """Every ``reported:`` entry must land in a table cell; none is dropped silently.

    ``threat_free`` maps each attack id of the suite to whether that attack is threat-free (clean).
    Raises :class:`SuiteError` naming the entry's field.
    """
    seen: dict[tuple[object, ...], int] = {}
    for i, r in enumerate(suite.reported):
        where = f"suite.reported.{i}"
        _check_defense_and_attack(suite, r, where)
        free = r.attack != WORST and threat_free.get(r.attack, False)
        _check_threat(suite, r, where, free)
        if not r.reported_only:
            _check_runs_there(suite, r, where, free, threat_free)
        key = r.key
        if key in seen:
            raise SuiteError(f"{where}: the same cell as suite.reported.{seen[key]}; give each number once")
        seen[key] = i


def _check_defense_and_attack(suite: Suite, r: Reported, where: str) -> None:
    defense_ids = [d.display for d in suite.defenses]
    attacks = sorted(a.id for a in suite.attacks)
    if r.reported_only and r.defense in defense_ids:
        raise SuiteError(
            f"{where}.defense: {r.defense!r} is a defense of this suite, so its row is measured",
            hint="drop `reported_only: true` from this entry",
        )
    if not r.reported_only and r.defense not in defense_ids:
        raise SuiteError(
            f"{where}.defense: {r.defense!r} is not a defense id of this suite (have {defense_ids})",
            hint="fix the id, or add `reported_only: true` for a method this suite does not run",
        )
    if r.attack != WORST and r.attack not in attacks:
        raise SuiteError(
            f"{where}.attack: {r.attack!r} is not an attack id of this suite (have {attacks})",
            hint=f"use an attack id, or {WORST!r} for the per-sample worst case over a defense's attacks",
        )


def _check_threat(suite: Suite, r: Reported, where: str, free: bool) -> None:
    if free:
        if r.norm is not None or r.eps is not None:
            raise SuiteError(f"{where}: attack {r.attack!r} is threat-free (clean); give no norm or eps")
        return
    if r.norm is None or r.eps is None:
        raise SuiteError(f"{where}: give norm and eps (the threat the number was measured at)")
    if (r.norm, eps_key(r.eps)) not in {(t.norm, eps_key(t.eps)) for t in suite.threats}:
        raise SuiteError(
            f"{where}: threat {r.norm} {format_eps(r.eps)} is not one of the suite's threats",
            hint="add the threat to `threats:` or fix norm/eps",
        )


def _check_runs_there(suite: Suite, r: Reported, where: str, free: bool, threat_free: Mapping[str, bool]) -> None:
    """The attack (or, for the worst case, two or more attacks) runs on that defense at that norm."""
    if r.attack != WORST:
        a = next(a for a in suite.attacks if a.id == r.attack)
        if a.defenses is not None and r.defense not in a.defenses:
            raise SuiteError(
                f"{where}: attack {r.attack!r} does not run on defense {r.defense!r} (its `defenses:` list)"
            )
        if not free and a.norms is not None and r.norm is not None and r.norm not in a.norms:
            raise SuiteError(f"{where}: attack {r.attack!r} does not run at norm {r.norm} (its `norms:` list)")
        return
    running = [
        a.id
        for a in suite.attacks
        if not threat_free.get(a.id, False)
        and (a.defenses is None or r.defense in a.defenses)
        and (a.norms is None or r.norm in a.norms)
    ]
    if len(running) < 2:
        raise SuiteError(
            f"{where}: the worst case over attacks needs two or more attacks on defense "
            f"{r.defense!r} at {r.norm}; it has {running or 'none'}",
            hint="compare the number with that attack's id instead",
        )
