"""What an attack's accuracy says about a defense: ``adaptive``, ``adaptive (weak)`` or an upper bound.

An attack is *adaptive* only if it attacks the defense itself (full, BPDA or custom gradients, or
queries; not the classifier alone, not a surrogate) and, on a stochastic defense, averages its
gradients over draws (EoT >= 2, the suite's ``eot:`` or the attack's own ``eot_iter``) or holds the
judge's seeds (``randomness: det``). An adaptive attack below a strength floor, fewer than
:data:`MIN_STEPS` gradient steps or fewer than :data:`MIN_QUERIES` queries, or a single-draw attack
on a randomised defense, is ``adaptive (weak)``: its number is shown as such in every format and the
``adaptive-attack`` check flags a defense whose worst case rests only on weak attacks. An attack whose
strength is unknown (:meth:`Attack.effort` returns None) is not called weak.
"""

from __future__ import annotations

from robbench.core import registry
from robbench.core.components import parse_params
from robbench.suite.model import AttackSpec

#: fewer gradient steps than this (per restart) is a weak adaptive attack
MIN_STEPS = 10
#: fewer queries than this is a weak query attack
MIN_QUERIES = 1000
#: the label of an attack through the defense below the floors
WEAK = "adaptive (weak)"


def attack_strength(spec: AttackSpec, *, stochastic: bool, randomness: str, eot: int) -> tuple[str, str | None]:
    """(``adaptive`` | ``adaptive (weak)`` | ``gray-box`` | ``transfer``, why it is weak or None)."""
    if spec.evaluation != "adaptive":
        return spec.evaluation, None
    if spec.weak:
        return WEAK, spec.weak
    cls = registry.attacks.get(spec.name)
    params = parse_params(cls.Params, spec.params, f"attack {spec.id}")
    if stochastic and randomness != "det" and max(eot, cls.own_eot(params)) < 2 and cls.uses_gradients:
        return WEAK, "single-draw gradients on a randomised defense (no EoT, not det)"
    effort = cls.effort(params)
    if effort is not None:
        kind, n = effort
        floor = MIN_STEPS if kind == "steps" else MIN_QUERIES
        if n < floor:
            return WEAK, f"{n} {'gradient steps' if kind == 'steps' else 'queries'} (< {floor})"
    return "adaptive", None
