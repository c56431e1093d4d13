"""``randomness`` (AutoAttack's check): a defense declared deterministic that gives different logits for
the same input twice draws randomness outside the generator it is given (flag); a stochastic defense
that is not repeatable with its seeds rewound cannot be evaluated with ``det`` (flag); a randomised
defense evaluated with neither EoT nor ``det`` randomness (flag).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from robbench.core.seeding import SampleRNG
from robbench.run.checks.records import record

if TYPE_CHECKING:
    from robbench.defenses.base import Defense
    from robbench.run.plan import Plan


def _deterministic_check(defense: Defense, display: str, x: torch.Tensor) -> dict[str, Any]:
    """A defense declared deterministic must give the same logits for the same input twice."""
    with torch.no_grad():
        diff = float((defense(x, None) - defense(x, None)).abs().max())
    if diff > 0:
        return record(
            "randomness",
            "flag",
            display,
            f"declared deterministic, but two forwards of the same input differ (max |logit diff| {diff:.3g}): "
            "it draws randomness outside the generator it is given",
            max_diff=diff,
        )
    return record("randomness", "ok", display, "deterministic: identical logits for the same input", max_diff=0.0)


def _repeat_and_spread(defense: Defense, x: torch.Tensor, ids: list[str], seed: int) -> tuple[float, float]:
    """Max logit difference with the seeds rewound (should be 0) and between two seeds (the spread)."""
    r1 = SampleRNG.for_samples(ids, seed, "checks-randomness", 1, device=x.device)
    r2 = SampleRNG.for_samples(ids, seed, "checks-randomness", 2, device=x.device)
    with torch.no_grad():
        a = defense(x, r1)
        r1.reset()
        a2 = defense(x, r1)
        b = defense(x, r2)
    return float((a - a2).abs().max()), float((a - b).abs().max())


def _attacked_adaptively(plan: Plan, display: str) -> tuple[bool, bool]:
    """(the defense has attacked cells, one of them goes through the defense (full, BPDA or custom gradients,
    or queries; not gray-box, not transfer) and uses EoT, det randomness or AutoAttack-rand)."""
    cells = [c for c in plan.cells if c.defense.display == display and c.threat is not None]
    through = [c for c in cells if c.attack.evaluation == "adaptive"]
    adaptive = any(c.eot > 1 or c.randomness == "det" for c in through)
    aa_rand = any(c.attack.name == "autoattack" and c.attack.params.get("version") == "rand" for c in through)
    return bool(cells), adaptive or aa_rand


def randomness_checks(
    defense: Defense, plan: Plan, display: str, x: torch.Tensor, ids: list[str], seed: int
) -> list[dict[str, Any]]:
    """The randomness records of one defense (see the module docstring)."""
    if not defense.stochastic:
        return [_deterministic_check(defense, display, x)]
    repeat, spread = _repeat_and_spread(defense, x, ids, seed)
    out = []
    if repeat > 0:
        out.append(
            record(
                "randomness",
                "flag",
                display,
                f"stochastic, but not repeatable with its seeds rewound (max |logit diff| {repeat:.3g}): "
                "randomness drawn outside its generator; det-randomness attacks cannot be trusted",
                max_diff=repeat,
            )
        )
    attacked, adaptive = _attacked_adaptively(plan, display)
    if spread == 0:
        out.append(
            record(
                "randomness", "info", display, "declared stochastic, but two draws gave identical logits", max_diff=0.0
            )
        )
    elif attacked and not adaptive:
        out.append(
            record(
                "randomness",
                "flag",
                display,
                f"randomised (two draws differ by up to {spread:.3g} in the logits) and attacked with neither EoT "
                "nor det randomness: single-draw attacks overestimate its robustness",
                max_diff=spread,
            )
        )
    elif not repeat:
        out.append(
            record(
                "randomness",
                "ok",
                display,
                "randomised, repeatable with fixed seeds, attacked with EoT or det",
                max_diff=spread,
            )
        )
    return out
