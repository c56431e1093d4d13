"""From rows to the tidy summary: accuracy per cell with Wilson CIs, scoring of stochastic
defenses, worst case over attacks, and the suite's reported numbers beside the measured ones.

Also the checked loader every reader of a results directory uses (:func:`load_results`): an
empty, corrupt or foreign directory is one clear :class:`~robbench.errors.ResultsError` (exit 2).
"""

from __future__ import annotations

from typing import Any

from robbench.core.threat import format_eps
from robbench.errors import SuiteError

#: the attack id of the per-sample worst case over a defense's attacks at one threat
WORST = "worst-case"


# ---- reported numbers ----------------------------------------------------------------------------
def _eps_key(eps: Any) -> float | None:
    return None if eps is None else round(float(eps), 8)


def check_reported(suite: Any, threat_free: dict[str, bool]) -> None:
    """Every ``reported:`` entry must land in a table cell; none is dropped silently.

    ``threat_free`` maps each attack id of the suite to whether that attack is threat-free (clean).
    Raises :class:`SuiteError` naming the entry's field.
    """
    defense_ids = [d.display for d in suite.defenses]
    attacks = {a.id: a for a in suite.attacks}
    threats = {(t.norm, _eps_key(t.eps)) for t in suite.threats}
    seen: dict[tuple[Any, ...], int] = {}
    for i, r in enumerate(suite.reported):
        where = f"suite.reported.{i}"
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
                f"{where}.attack: {r.attack!r} is not an attack id of this suite (have {sorted(attacks)})",
                hint=f"use an attack id, or {WORST!r} for the per-sample worst case over a defense's attacks",
            )
        free = r.attack != WORST and threat_free.get(r.attack, False)
        if free and (r.norm is not None or r.eps is not None):
            raise SuiteError(f"{where}: attack {r.attack!r} is threat-free (clean); give no norm or eps")
        if not free:
            if r.norm is None or r.eps is None:
                raise SuiteError(f"{where}: give norm and eps (the threat the number was measured at)")
            if (r.norm.lower(), _eps_key(r.eps)) not in threats:
                raise SuiteError(
                    f"{where}: threat {r.norm} {format_eps(r.eps)} is not one of the suite's threats",
                    hint="add the threat to `threats:` or fix norm/eps",
                )
        if not r.reported_only and r.attack != WORST:
            a = attacks[r.attack]
            if a.defenses is not None and r.defense not in a.defenses:
                raise SuiteError(
                    f"{where}: attack {r.attack!r} does not run on defense {r.defense!r} (its `defenses:` list)"
                )
            if not free and a.norms is not None and r.norm is not None and r.norm.lower() not in a.norms:
                raise SuiteError(f"{where}: attack {r.attack!r} does not run at norm {r.norm} (its `norms:` list)")
        if not r.reported_only and r.attack == WORST:
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
        key = (r.defense, r.attack, r.norm, _eps_key(r.eps))
        if key in seen:
            raise SuiteError(f"{where}: the same cell as suite.reported.{seen[key]}; give each number once")
        seen[key] = i
