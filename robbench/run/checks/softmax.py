"""``softmax-outputs`` (AutoAttack's check): outputs in [0, 1] summing to 1 are probabilities, not
logits; attack losses on them saturate (flag).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from robbench.core.seeding import SampleRNG
from robbench.run.checks.records import record

if TYPE_CHECKING:
    from robbench.defenses.base import Defense


def softmax_check(defense: Defense, display: str, x: torch.Tensor, ids: list[str], seed: int) -> dict[str, Any]:
    rng = SampleRNG.for_samples(ids, seed, "checks-softmax", device=x.device) if defense.stochastic else None
    with torch.no_grad():
        out = defense(x, rng)
    prob = bool(out.min() > -1e-5 and out.max() < 1 + 1e-5 and ((out.sum(-1) - 1).abs() < 1e-5).all())
    if prob:
        return record(
            "softmax-outputs",
            "flag",
            display,
            "outputs are in [0,1] and sum to 1: probabilities, not logits; attack losses saturate on them",
        )
    return record("softmax-outputs", "ok", display, "outputs are logits")
