"""Random-phase pixel wobble: a randomised canary whose single-draw gradients are shattered."""

from __future__ import annotations

import math
from typing import cast

import torch
from pydantic import Field
from torch import Tensor

from robbench.core.components import Params
from robbench.core.seeding import SampleRNG
from robbench.defenses.base import Defense
from robbench.errors import SuiteError


class RandomPhaseParams(Params):
    #: largest displacement of a pixel, in pixel units
    amplitude: float = Field(default=0.05, gt=0.0, le=0.5)
    #: angular frequency of the wobble over pixel values
    frequency: float = Field(default=60.0, gt=0.0, le=10_000.0)


class RandomPhase(Defense):
    """Random-phase pixel wobble before the classifier (randomised canary for EoT).

    Paper: none; a minimal instance of the randomised input transformations that Athalye, Carlini,
    Wagner, "Obfuscated Gradients Give a False Sense of Security", ICML 2018, Sec. 4.3, break with
    Expectation over Transformation. Threat norms: all.

    Parameters: ``amplitude`` a (0.05), ``frequency`` w (60):
    ``purify(x) = clip(x + a * sin(w * x + phi), 0, 1)`` with a phase ``phi ~ U(0, 2 pi)`` drawn per
    pixel from the sample's own stream.

    Choices: the image moves by at most ``a`` per pixel, so clean accuracy stays near the classifier's;
    but with ``a * w > 1`` the Jacobian ``1 + a w cos(w x + phi)`` has a random sign on every pixel and
    draw, so the gradient of a single draw points the wrong way on a large share of pixels. Its
    expectation over the phase is 1 (the identity), so EoT-averaged gradients, and BPDA, recover the
    classifier's gradient. Shipped as a canary: a protocol that calls it robust lacks EoT or BPDA.
    Stochastic: score it with several draws.
    """

    Params = RandomPhaseParams
    stochastic = True
    example_params = {"amplitude": 0.05, "frequency": 60.0}

    def purify(self, x: Tensor, *, rng: SampleRNG | None = None) -> Tensor:
        if rng is None:
            raise SuiteError("random_phase is stochastic and needs the generator the runner gives it")
        p = cast(RandomPhaseParams, self.params)
        phase = rng.rand(*x.shape[1:]).to(device=x.device, dtype=x.dtype) * (2 * math.pi)
        return (x + p.amplitude * torch.sin(p.frequency * x + phase)).clamp(0.0, 1.0)
