"""``zero-gradients``: the share of samples whose input gradient of the margin loss is exactly zero (flag
when any), and the median ratio of its norm to the classifier-alone gradient norm (flag below
:data:`VANISHING_RATIO`: the gradient vanishes through the purifier). The margin loss is used because
cross-entropy gradients underflow to exact zeros on confidently classified points even without a defense.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from robbench.core import registry
from robbench.core.seeding import SampleRNG
from robbench.run.checks.records import WHITE_BOX, record

if TYPE_CHECKING:
    from robbench.defenses.base import Defense
    from robbench.run.plan import Plan


VANISHING_RATIO = 1e-3


# ---- compute checks ---------------------------------------------------------------------------
def gradient_modes(plan: Plan, display: str) -> list[str]:
    modes: list[str] = []
    for c in plan.cells:
        if c.defense.display != display or c.threat is None or c.attack.surrogate is not None:
            continue
        if (
            registry.attacks.get(c.attack.name).uses_gradients
            and c.attack.gradient in WHITE_BOX
            and c.attack.gradient not in modes
        ):
            modes.append(c.attack.gradient)
    return modes


def zero_gradient_check(
    defense: Defense, display: str, mode: str, x: torch.Tensor, y: torch.Tensor, ids: list[str], seed: int
) -> dict[str, Any]:
    from robbench.attacks.target import Target

    def grad(m: str) -> torch.Tensor:
        rng = SampleRNG.for_samples(ids, seed, "checks-grad", device=x.device) if defense.stochastic else None
        t = Target(defense, gradient=m, randomness="fresh", rng=rng)  # type: ignore[arg-type]
        _, g, _ = t.loss_grad(x, y, "margin")
        return g.flatten(1)

    g = grad(mode)
    norms = g.norm(dim=1)
    zero = float((norms == 0).float().mean())
    numbers: dict[str, Any] = {"zero_share": zero, "gradient": mode}
    ratio = None
    if defense.classifier is not None and mode != "classifier":
        ref = grad("classifier").norm(dim=1)
        ok = ref > 0
        if bool(ok.any()):
            ratio = float((norms[ok] / ref[ok]).median())
            numbers["norm_ratio"] = ratio
    subject = f"{display} / gradient {mode}"
    if zero > 0:
        return record(
            "zero-gradients",
            "flag",
            subject,
            f"{100 * zero:.0f}% of samples have an exactly zero input gradient: gradient attacks get no signal "
            "(shattered gradients; try BPDA or a gradient-free attack)",
            **numbers,
        )
    if ratio is not None and ratio < VANISHING_RATIO:
        return record(
            "zero-gradients",
            "flag",
            subject,
            f"input gradients are {ratio:.2g}x the classifier's alone (median): they vanish through the purifier",
            **numbers,
        )
    return record("zero-gradients", "ok", subject, "non-zero input gradients", **numbers)
