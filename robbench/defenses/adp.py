"""ADP: Gaussian noise injection, then deterministic score-ascent (denoising) steps."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
from pydantic import Field
from torch import Tensor

from robbench.core.components import BuildContext, Params, ParamsModel
from robbench.core.refs import ModelRef
from robbench.core.seeding import SampleRNG
from robbench.defenses.base import Defense
from robbench.defenses.score_common import (
    OptionalPositiveFloat,
    PositiveFloat,
    ScoreEval,
    check_sigma_range,
    load_score_model,
    run_steps,
    score_ladder,
    wants_graph,
)
from robbench.errors import RobbenchError


class ADPParams(Params):
    #: the score model (zoo name or checkpoint reference)
    score_model: ModelRef
    #: std of the injected Gaussian noise (paper: 0.25)
    noise_std: PositiveFloat = 0.25
    #: deterministic update steps
    steps: int = Field(default=5, ge=1, le=100_000)
    #: step size as a fraction of sigma_k^2: x += step_size * sigma_k^2 * s(x, sigma_k)
    step_size: float = Field(default=1.0, gt=0, le=10)
    #: noise level of the first step (default: noise_std)
    sigma_start: OptionalPositiveFloat = None
    #: noise level of the last step; levels are geometric from sigma_start to sigma_end
    sigma_end: PositiveFloat = 0.05
    #: images per score-network call (a fixed shape makes results independent of the batch size)
    micro_batch: int = Field(default=64, ge=1, le=1_000_000)

    def levels(self) -> list[float]:
        """sigma_k per step, geometric from sigma_start to sigma_end."""
        hi = self.noise_std if self.sigma_start is None else self.sigma_start
        if self.steps == 1:
            return [hi]
        r = math.log(self.sigma_end / hi) / (self.steps - 1)
        return [hi * math.exp(r * k) for k in range(self.steps)]


class ADP(Defense):
    """ADP (Yoon et al. 2021): inject N(0, 0.25^2) noise, then deterministic score-ascent denoising steps.

    Paper: Yoon, Hwang, Lee, "Adversarial Purification with Score-based Generative Models",
    ICML 2021. Threat norms: any.

    ``x_0 = x_a + noise_std * N(0, I)``; then for ``k = 0..steps-1``:
    ``x_{k+1} = clip_[0,1](x_k + step_size * sigma_k^2 * s(x_k, sigma_k))``, the noise-free
    (deterministic) Langevin update of the paper, with ``sigma_k`` geometric from ``sigma_start``
    (default ``noise_std``) to ``sigma_end``. With ``step_size`` 1 each step is one Tweedie
    denoising step ``D(x_k, sigma_k)`` at a decreasing noise level.

    Parameters: ``score_model``; ``noise_std`` (0.25, the paper's); ``steps`` (5);
    ``step_size`` (1.0); ``sigma_start`` (noise_std); ``sigma_end`` (0.05); ``micro_batch`` (64).
    The noise levels must lie within the score model's ladder.

    Stochastic: the injected noise is the only random draw, from the sample's own stream of the
    :class:`~robbench.core.seeding.SampleRNG` it is given. Choices where the paper is silent for a
    multi-level score model: the paper's EBM gives one score; here the step uses the level-
    conditional score with the step size ``step_size * sigma_k^2`` (the Tweedie step at that level)
    and sigma annealed geometrically; no early stopping (a fixed number of steps keeps the
    purifier a fixed function); clipping to [0, 1] after every step. Full-gradient attacks
    differentiate through the steps (checkpointed per step when the target asks).
    """

    Params = ADPParams
    stochastic = True
    iterative = True
    example_params = {
        "score_model": "tiny-score-digits",
        "steps": 2,
        "noise_std": 0.25,
        "sigma_end": 0.1,
        "micro_batch": 16,
    }

    def __init__(self, params: ParamsModel, ctx: BuildContext) -> None:
        super().__init__(params, ctx)
        p = cast(ADPParams, params)
        self.score_model = load_score_model(p.score_model, ctx)
        self.check_levels(p, self.score_model.sigmas.detach().double().cpu())
        self._scorer = ScoreEval(self.score_model, p.micro_batch, self._count)

    def _count(self, n: int) -> None:
        self.evals += n

    @staticmethod
    def check_levels(p: ADPParams, ladder: Tensor) -> None:
        lv = p.levels()
        check_sigma_range("adp", "sigma_start/sigma_end", min(lv), max(lv), ladder)

    @classmethod
    def check_params(cls, params: ParamsModel, ctx: BuildContext | None) -> None:
        p = cast(ADPParams, params)
        cls.check_levels(p, score_ladder(p.score_model, ctx))

    def _step(self, state: Sequence[Tensor], consts: Sequence[Tensor], create_graph: bool) -> tuple[Tensor, ...]:
        p = cast(ADPParams, self.params)
        (x,) = state
        (hyper,) = consts
        sigma = float(hyper[0])
        sig = torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device)
        x = x + (p.step_size * sigma * sigma) * self._scorer.score(x, sig)
        return (x.clamp(0.0, 1.0),)

    def purify(self, x: Tensor, *, rng: SampleRNG | None = None) -> Tensor:
        p = cast(ADPParams, self.params)
        if rng is None:
            raise RobbenchError(
                "adp is stochastic and needs a SampleRNG (its randomness comes only from it)",
                hint="call purify(x, rng=SampleRNG.for_samples(ids, seed, ...))",
            )
        if len(rng) != x.shape[0]:
            raise RobbenchError(f"adp: SampleRNG has {len(rng)} streams for a batch of {x.shape[0]}")
        start = x + p.noise_std * rng.randn(*x.shape[1:]).to(x.device)
        consts = [(torch.tensor([s], dtype=torch.float64),) for s in p.levels()]
        (out,) = run_steps(
            self._step,
            (start,),
            consts,
            differentiable=wants_graph(x),
            checkpoint=bool(getattr(self, "_checkpoint", False)),
        )
        return out
