"""Additive Gaussian input noise: a randomised canary defense."""

from __future__ import annotations

from typing import cast

from pydantic import Field
from torch import Tensor

from robbench.core.components import Params
from robbench.core.seeding import SampleRNG
from robbench.defenses.base import Defense
from robbench.errors import SuiteError


class RandomNoiseParams(Params):
    #: standard deviation of the Gaussian noise, in pixel units
    sigma: float = Field(default=0.3, gt=0.0, le=2.0)


class RandomNoise(Defense):
    """Gaussian noise added to the input before the classifier (randomised canary).

    Paper: the input-randomisation family evaluated with Expectation over Transformation by
    Athalye, Carlini, Wagner, "Obfuscated Gradients Give a False Sense of Security", ICML 2018,
    Sec. 4.3 (e.g. Xie et al. 2018, random resizing and padding); the noise is the simplest member.
    Threat norms: all.

    Parameters: ``sigma`` (0.3): ``purify(x) = clip(x + sigma * n, 0, 1)`` with ``n ~ N(0, I)`` drawn
    from the sample's own stream.

    Choices: clipping to [0, 1] after the noise; nothing else. A single-draw attack chases the noise of
    one draw and is judged on another, so the defense *looks* robust; EoT averages the gradient over
    draws and recovers the attack. Stochastic: score it with several draws.
    """

    Params = RandomNoiseParams
    stochastic = True
    example_params = {"sigma": 0.3}

    def purify(self, x: Tensor, *, rng: SampleRNG | None = None) -> Tensor:
        if rng is None:
            raise SuiteError("random_noise is stochastic and needs the generator the runner gives it")
        sigma = cast(RandomNoiseParams, self.params).sigma
        return (x + sigma * rng.randn_like(x)).clamp(0.0, 1.0)
