"""A third-party robbench plugin used by the tests: defenses and attacks, some deliberately broken.

``test_blur`` and ``test_noise`` are well-behaved. ``test_gauss`` is a stochastic purifier (for the
reproducibility tests). ``test_nan`` returns NaN/inf and ``test_cheat`` leaves its threat ball or
[0, 1]: they exist so the tests can prove that the runner flags them (tests/test_numerical_faults.py).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from robbench.attacks.base import Attack
from robbench.core.components import Params
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


class GaussParams(Params):
    sigma: float = Field(default=0.1, gt=0, le=1)


class Gauss(Defense):
    """Gaussian noise before the classifier, drawn from the sample's stream (test plugin, stochastic)."""

    Params = GaussParams
    stochastic = True

    def purify(self, x, *, rng=None):  # type: ignore[no-untyped-def]
        assert rng is not None, "a stochastic defense needs its generator"
        return (x + self.params.sigma * rng.randn_like(x)).clamp(0, 1)  # type: ignore[attr-defined]


class NaNParams(Params):
    #: where the non-finite value appears: in the purified image (so gradients are NaN too) or the logits
    where: Literal["purify", "logits"] = "purify"
    value: Literal["nan", "inf"] = "nan"
    #: only images whose mean pixel is at least this are affected (0: all)
    min_mean: float = Field(default=0.0, ge=0, le=1)


class NaNDefense(Defense):
    """Returns NaN/inf for some inputs (test plugin: a numerically broken defense)."""

    Params = NaNParams

    def _mask(self, x):  # type: ignore[no-untyped-def]
        return (x.flatten(1).mean(1) >= self.params.min_mean).view(-1, *[1] * (x.ndim - 1))  # type: ignore[attr-defined]

    def _bad(self, t):  # type: ignore[no-untyped-def]
        return torch.full_like(t, float(self.params.value))  # type: ignore[attr-defined]

    def purify(self, x, *, rng=None):  # type: ignore[no-untyped-def]
        if self.params.where != "purify":  # type: ignore[attr-defined]
            return x
        return torch.where(self._mask(x), x + self._bad(x), x)

    def classify(self, x):  # type: ignore[no-untyped-def]
        logits = super().classify(x)
        if self.params.where != "logits":  # type: ignore[attr-defined]
            return logits
        return torch.where(self._mask(x).view(-1, 1), self._bad(logits), logits)


class CheatParams(Params):
    #: ball: twice the budget away; box: inside the ball but below 0; nan: a NaN image
    mode: Literal["ball", "box", "nan"] = "ball"


class Cheat(Attack):
    """Returns images outside its threat ball, outside [0,1], or NaN (test plugin: a buggy attack; Linf)."""

    Params = CheatParams
    norms = frozenset({"linf"})

    def run(self, target, x, y, threat, *, rng):  # type: ignore[no-untyped-def]
        mode = self.params.mode  # type: ignore[attr-defined]
        if mode == "ball":
            return (x + 2 * threat.eps).clamp(0, 1)
        if mode == "box":
            return x - threat.eps / 2
        return x + float("nan")
