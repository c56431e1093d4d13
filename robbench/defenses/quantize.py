"""Coarse input quantisation: a deterministic, gradient-masking canary defense."""

from __future__ import annotations

from typing import cast

import torch
from pydantic import Field
from torch import Tensor

from robbench.core.components import Params
from robbench.core.seeding import SampleRNG
from robbench.defenses.base import Defense


class QuantizeParams(Params):
    #: number of evenly spaced grey levels in [0, 1] (2 = binarisation)
    levels: int = Field(default=4, ge=2, le=256)


class Quantize(Defense):
    """Input quantisation to a few grey levels before the classifier (gradient-masking canary).

    Paper: bit-depth reduction of Xu, Evans, Qi, "Feature Squeezing: Detecting Adversarial Examples
    in Deep Neural Networks", NDSS 2018; shown to give obfuscated (shattered) gradients and broken
    by BPDA in Athalye, Carlini, Wagner, "Obfuscated Gradients Give a False Sense of Security",
    ICML 2018, Sec. 4.1. Threat norms: all.

    Parameters: ``levels`` (4): pixels are rounded to the nearest of ``levels`` evenly spaced values
    ``0, 1/(levels-1), ..., 1``.

    Choices: round-half-to-even (``torch.round``); no dithering. The exact gradient of the rounding is
    zero almost everywhere, so full-gradient attacks see no signal and the defense *looks* robust;
    BPDA (identity in place of the rounding) recovers the classifier's gradient and breaks it. It is
    shipped as a canary: a protocol that calls it robust is masking gradients. Deterministic.
    """

    Params = QuantizeParams
    example_params = {"levels": 4}
    differentiable = False

    def purify(self, x: Tensor, *, rng: SampleRNG | None = None) -> Tensor:
        steps = float(cast(QuantizeParams, self.params).levels - 1)
        return torch.round(x * steps) / steps
