"""ScoreOpt: test-time optimisation of the input under a score-model (Tweedie denoiser) prior."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

import torch
from pydantic import Field, model_validator
from torch import Tensor

from robbench.core.components import BuildContext, Params, ParamsModel
from robbench.core.refs import ModelRef
from robbench.core.seeding import SampleRNG
from robbench.defenses.base import Defense
from robbench.defenses.score_common import (
    Adam,
    OptionalPositiveFloat,
    PositiveFloat,
    ScoreEval,
    check_sigma_range,
    input_grad,
    load_score_model,
    run_steps,
    score_ladder,
    wants_graph,
)
from robbench.errors import RobbenchError


class ScoreOptParams(Params):
    #: the score model (zoo name or checkpoint reference)
    score_model: ModelRef
    #: ``o`` starts at the input, ``n`` at the input plus Gaussian noise of std ``init_noise``
    variant: Literal["o", "n"] = "o"
    #: ``diff``, ``mse`` (diff + lam ||x - x_a||^2) or ``sr`` (score regulariser)
    loss: Literal["diff", "mse", "sr"] = "sr"
    #: weight of ||x - x_a||^2 in the ``mse`` loss
    lam: float = Field(default=1.0, ge=0)
    #: Adam steps
    steps: int = Field(default=5, ge=1, le=100_000)
    #: Adam learning rate
    lr: float = Field(default=0.05, gt=0)
    #: noise range of the loss: sigma_t = sigma_min + t (sigma_max - sigma_min), t ~ U(0, 1)
    sigma_min: PositiveFloat = 0.05
    sigma_max: PositiveFloat = 0.25
    #: std of the starting noise of variant ``n`` (default: sigma_max)
    init_noise: OptionalPositiveFloat = None
    #: noise draws per step and sample
    n_noise: int = Field(default=1, ge=1, le=4096)
    #: images per score-network call (a fixed shape makes results independent of the batch size)
    micro_batch: int = Field(default=64, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _range(self) -> ScoreOptParams:
        if self.sigma_min > self.sigma_max:
            raise ValueError(f"sigma_min ({self.sigma_min:g}) exceeds sigma_max ({self.sigma_max:g})")
        return self


class ScoreOpt(Defense):
    """ScoreOpt: a few Adam steps on the input against a Tweedie-denoiser loss (variants O / N; diff, mse, sr).

    Paper: Zhang, Zhang, Xu, Tang, Luo, Ji, "Enhancing Adversarial Robustness via Score-Based
    Optimization", NeurIPS 2023 (arXiv 2307.04333). Threat norms: any (no ball; the loss keeps
    the output near the input).

    Starting at ``x = x_a`` (variant ``o``) or ``x = x_a + init_noise * N(0, I)`` (variant ``n``),
    takes ``steps`` Adam steps on, per sample, with ``D`` the score model's Tweedie denoiser
    ``D(z, sigma) = z + sigma^2 s(z, sigma)``, ``sigma_t = sigma_min + t (sigma_max - sigma_min)``,
    ``t ~ U(0, 1)`` and ``eps, eps1, eps2 ~ N(0, I)`` drawn anew each step:

    - ``diff``: ``||D(x + sigma_t eps, sigma_t) - x||^2``;
    - ``mse``: ``diff + lam ||x - x_a||^2``;
    - ``sr``: ``||D(x + sigma_t eps1) - x||^2 + ||D(x + sigma_t eps1) - D(x_a + sigma_t eps2)||^2``.

    Parameters: ``score_model``; ``variant`` (o); ``loss`` (sr, the paper's hyperparameter-free
    proposal); ``lam`` (1.0); ``steps`` (5, "about 5" in the paper); ``lr`` (0.05); ``sigma_min``,
    ``sigma_max`` (0.05, 0.25; must lie within the model's ladder); ``init_noise`` (sigma_max);
    ``n_noise`` (1 draw per step, averaged when larger); ``micro_batch`` (64).

    Stochastic: every draw (t, the noises, the start noise of variant n) comes from the sample's
    own stream of the :class:`~robbench.core.seeding.SampleRNG` it is given, so a fixed seed makes it a
    deterministic function of the input (any batch size or position); score it over several draws
    or attack it with EoT. Choices where the paper is silent: sigma_t is linear in t (EDM's
    sigma(t) = t) over a range given in pixel units of [0, 1] images; losses are sums over pixels;
    the gradient flows through every occurrence of x (the denoiser and the ``- x`` term); the
    iterate is clipped to [0, 1] after every step; Adam betas 0.9/0.999, eps 1e-8. Full-gradient
    attacks differentiate through the steps (second order through the score network),
    checkpointed per step when the target asks.
    """

    Params = ScoreOptParams
    stochastic = True
    iterative = True
    example_params = {"score_model": "tiny-score-digits", "steps": 2, "loss": "sr", "variant": "n", "micro_batch": 16}

    def __init__(self, params: ParamsModel, ctx: BuildContext) -> None:
        super().__init__(params, ctx)
        p = cast(ScoreOptParams, params)
        self.score_model = load_score_model(p.score_model, ctx)
        check_sigma_range(
            "scoreopt", "sigma_min/sigma_max", p.sigma_min, p.sigma_max, self.score_model.sigmas.detach().double().cpu()
        )
        self._scorer = ScoreEval(self.score_model, p.micro_batch, self._count)
        self._adam = Adam()

    def _count(self, n: int) -> None:
        self.evals += n

    @classmethod
    def check_params(cls, params: ParamsModel, ctx: BuildContext | None) -> None:
        p = cast(ScoreOptParams, params)
        check_sigma_range("scoreopt", "sigma_min/sigma_max", p.sigma_min, p.sigma_max, score_ladder(p.score_model, ctx))

    def _denoise_many(self, z: Tensor, sigma: Tensor, noise: Tensor) -> Tensor:
        """D(z + sigma eps_k, sigma) for K draws: z (B, ...), sigma (B,), noise (B, K, ...) -> (B, K, ...)."""
        b, k = noise.shape[:2]
        s = sigma.view(b, 1, *[1] * (z.ndim - 1))
        noisy = (z[:, None] + s * noise).reshape(b * k, *z.shape[1:])
        return self._scorer.denoise(noisy, sigma.repeat_interleave(k)).view(b, k, *z.shape[1:])

    def loss(self, x: Tensor, x_a: Tensor, sigma: Tensor, eps1: Tensor, eps2: Tensor) -> Tensor:
        """The per-sample loss (B,) for noise levels ``sigma`` (B,) and draws ``eps1, eps2`` (B, K, ...)."""
        p = cast(ScoreOptParams, self.params)
        d1 = self._denoise_many(x, sigma, eps1)
        out = (d1 - x[:, None]).square().flatten(2).sum(2).mean(1)
        if p.loss == "mse":
            out = out + p.lam * (x - x_a).square().flatten(1).sum(1)
        elif p.loss == "sr":
            with torch.no_grad() if not x_a.requires_grad else torch.enable_grad():
                d2 = self._denoise_many(x_a, sigma, eps2)
            out = out + (d1 - d2).square().flatten(2).sum(2).mean(1)
        return out

    def _step(self, state: Sequence[Tensor], consts: Sequence[Tensor], create_graph: bool) -> tuple[Tensor, ...]:
        p = cast(ScoreOptParams, self.params)
        x, m, v = state
        x_a, sigma, eps1, eps2, hyper = consts
        t = int(hyper[0])
        g = input_grad(lambda z: self.loss(z, x_a, sigma, eps1, eps2), x, create_graph)
        x, m, v = self._adam.step(x, m, v, g, p.lr, t)
        return x.clamp(0.0, 1.0), m, v

    def purify(self, x: Tensor, *, rng: SampleRNG | None = None) -> Tensor:
        p = cast(ScoreOptParams, self.params)
        if rng is None:
            raise RobbenchError(
                "scoreopt is stochastic and needs a SampleRNG (its randomness comes only from it)",
                hint="call purify(x, rng=SampleRNG.for_samples(ids, seed, ...))",
            )
        if len(rng) != x.shape[0]:
            raise RobbenchError(f"scoreopt: SampleRNG has {len(rng)} streams for a batch of {x.shape[0]}")
        shape = tuple(x.shape[1:])
        start = x
        if p.variant == "n":
            noise_std = p.sigma_max if p.init_noise is None else p.init_noise
            start = x + noise_std * rng.randn(*shape).to(x.device)
        consts = []
        k = p.n_noise
        for t in range(1, p.steps + 1):
            u = rng.rand(1).to(x.device).view(-1)
            sigma = (p.sigma_min + u * (p.sigma_max - p.sigma_min)).to(x.dtype)
            eps1 = rng.randn(k, *shape).to(x.device)
            eps2 = rng.randn(k, *shape).to(x.device) if p.loss == "sr" else torch.zeros(0, device=x.device)
            consts.append((x, sigma, eps1, eps2, torch.tensor([t], dtype=torch.float64)))
        zeros = torch.zeros_like(x)
        out, _, _ = run_steps(
            self._step,
            (start, zeros, zeros),
            consts,
            differentiable=wants_graph(x),
            checkpoint=bool(getattr(self, "_checkpoint", False)),
        )
        return out
