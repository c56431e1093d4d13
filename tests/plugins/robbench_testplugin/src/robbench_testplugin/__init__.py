"""A third-party robbench plugin used by the tests: one defense and one attack."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from robbench.attacks.base import Attack
from robbench.components import Params
from robbench.defenses.base import Defense


class BlurParams(Params):
    kernel: int = Field(default=3, ge=1, le=9)


class Blur(Defense):
    """Box blur before the classifier (test plugin)."""

    Params = BlurParams

    def purify(self, x, *, rng=None):  # type: ignore[no-untyped-def]
        k = self.params.kernel  # type: ignore[attr-defined]
        return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1).clamp(0, 1)


class UniformNoise(Attack):
    """Random uniform noise at the budget's corners (test plugin, Linf only)."""

    norms = frozenset({"linf"})

    def run(self, target, x, y, threat, *, rng):  # type: ignore[no-untyped-def]
        return (x + threat.eps * torch.sign(rng.rand(*x.shape[1:]) - 0.5)).clamp(0, 1)
