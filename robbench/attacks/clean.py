"""No perturbation: the clean accuracy of a defense."""

from __future__ import annotations

from torch import Tensor

from robbench.attacks.base import Attack
from robbench.attacks.target import Target
from robbench.core.seeding import SampleRNG
from robbench.core.threat import ThreatModel


class Clean(Attack):
    """Clean inputs (no attack): the defense's accuracy on unperturbed data.

    Paper: none. Threat norms: none (threat-free: one cell per defense). Parameters: none.
    """

    threat_free = True
    uses_gradients = False

    def run(self, target: Target, x: Tensor, y: Tensor, threat: ThreatModel | None, *, rng: SampleRNG) -> Tensor:
        return x.clone()
