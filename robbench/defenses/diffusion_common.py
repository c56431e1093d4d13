"""Shared machinery of the diffusion-model defenses (DiffPure, GDMP, RDC, AGDM).

Discrete VP (DDPM) process of an epsilon-prediction model with cumulative products ``abar_t``:

- forward (``q_sample``): ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) z``;
- clean estimate (``predict_x0``): ``x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)``;
- reverse step ``t -> s`` (``s < t``; ``s = -1`` means "to data", ``abar_{-1} = 1``) on a possibly
  strided schedule (the respacing of Nichol & Dhariwal 2021: ``beta' = 1 - abar_t / abar_s``):

  * DDPM ancestral: ``x_s = c0 x0_hat + ct x_t + sqrt(var) z`` with the posterior
    ``c0 = sqrt(abar_s) beta' / (1 - abar_t)``, ``ct = sqrt(1 - beta') (1 - abar_s) / (1 - abar_t)``,
    ``var = beta' (1 - abar_s) / (1 - abar_t)`` (zero on the last step);
  * DDIM (eta = 0): ``x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s) eps``.

- guidance by a potential ``D(x_t)`` to be *lowered* (GDMP, AGDM) enters as a score correction
  (Dhariwal & Nichol 2021, eq. 14 form): ``eps' = eps_hat + scale * sqrt(1 - abar_t) * grad D(x_t)``,
  which for DDPM equals the classic mean shift ``-scale * Sigma_t * grad D`` up to O(beta) terms
  and works unchanged for DDIM.

:class:`DiffusionPurifier` is the base of the purifiers: parameters, validation (before any
compute), model loading, the randomness (all draws from the per-sample :class:`SampleRNG`, made
*before* the reverse loop, so a checkpointed step recomputes identically), gradient checkpointing
over reverse steps (``torch.utils.checkpoint``, non-reentrant) and the evaluation counter.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, cast

import torch
from pydantic import Field, field_validator
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from robbench.core.components import BuildContext, Params, ParamsModel
from robbench.core.refs import ModelRef
from robbench.core.seeding import SampleRNG
from robbench.defenses.base import Defense
from robbench.errors import RobbenchError, SuiteError
from robbench.models.generative import DiffusionModel, from_diffusion, to_diffusion

Sampler = Literal["ddpm", "ddim"]


# ---- the process --------------------------------------------------------------------------------
def t_star_index(t_star: float, timesteps: int) -> int:
    """The discrete start index of a diffusion to the fraction ``t_star`` of a T-step schedule.

    ``t_star * T`` forward steps (rounded, at least one), i.e. index ``round(t_star * T) - 1``:
    DiffPure's ``t* = 0.1`` on T = 1000 is 100 steps, index 99.
    """
    return min(timesteps, max(1, round(t_star * timesteps))) - 1


def reverse_timesteps(t_start: int, steps: int | None) -> list[int]:
    """Descending indices visited by the reverse process from ``t_start``: all of them when
    ``steps`` is None, else ``steps`` evenly spaced ones (rounded; always ``t_start`` first and 0 last)."""
    if steps is None or steps >= t_start + 1:
        return list(range(t_start, -1, -1))
    if steps == 1:
        return [t_start]
    pts = [round(t_start - i * t_start / (steps - 1)) for i in range(steps)]
    out: list[int] = []
    for p in pts:
        if not out or p < out[-1]:
            out.append(p)
    return out


def q_sample(x0: Tensor, abar_t: float | Tensor, noise: Tensor) -> Tensor:
    """Forward VP diffusion: ``sqrt(abar_t) x0 + sqrt(1 - abar_t) noise`` (abar a float or (B,))."""
    a = _col(abar_t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def predict_x0(x_t: Tensor, eps: Tensor, abar_t: float | Tensor) -> Tensor:
    """Tweedie-style clean estimate of an epsilon-prediction model."""
    a = _col(abar_t, x_t)
    return (x_t - (1 - a).sqrt() * eps) / a.sqrt()


def ddpm_coefficients(abar_t: float, abar_s: float) -> tuple[float, float, float]:
    """``(c0, ct, var)`` of the (respaced) DDPM posterior ``q(x_s | x_t, x_0)``; see the module doc."""
    beta = 1.0 - abar_t / abar_s
    c0 = math.sqrt(abar_s) * beta / (1.0 - abar_t)
    ct = math.sqrt(1.0 - beta) * (1.0 - abar_s) / (1.0 - abar_t)
    var = beta * (1.0 - abar_s) / (1.0 - abar_t)
    return c0, ct, max(var, 0.0)


def _col(a: float | Tensor, like: Tensor) -> Tensor:
    t = torch.as_tensor(a, dtype=like.dtype, device=like.device)
    return t.view(-1, *[1] * (like.ndim - 1)) if t.ndim == 1 else t


# ---- models and validation ----------------------------------------------------------------------
def default_model_ref(ref: ModelRef | None, ctx: BuildContext | None, suffix: str) -> ModelRef | None:
    """``ref``, or the zoo's ``<dataset><suffix>`` (e.g. ``digits-diffusion``) when it is None."""
    if ref is not None:
        return ref
    if ctx is None:
        return None
    return ModelRef(zoo=f"{ctx.dataset.name}{suffix}")


def describe_ref(ref: ModelRef) -> str:
    return repr(ref.zoo) if ref.zoo else f"{ref.arch} checkpoint {ref.checkpoint}"


def check_ref(ref: ModelRef, field: str, generative: bool = True) -> None:
    """A missing model (unknown zoo name, absent checkpoint, unknown architecture) -> SuiteError; a RobustBench
    zoo entry (a classifier) where a generative model is asked for (``generative``) -> SuiteError."""
    from robbench.zoo import check_model_ref

    if generative and ref.robustbench is not None:
        raise SuiteError(
            f"{field}: RobustBench entry {ref.robustbench.name!r} is a classifier, not a generative model",
            hint="give the score or diffusion model as a zoo name or {arch, checkpoint, format}",
        )
    try:
        check_model_ref(ref, field)
    except RobbenchError as exc:
        raise SuiteError(exc.message, hint=exc.hint) from None


def model_skeleton(ref: ModelRef) -> nn.Module | None:
    """The architecture of ``ref`` built on the meta device (no weights, no training, no memory),
    to read attributes such as ``class_conditional`` and buffer shapes; None if it cannot be built."""
    from robbench.models import build_model
    from robbench.zoo import get_recipe

    try:
        if ref.zoo:
            r = get_recipe(ref.zoo)
            arch, config = r.arch, r.config
        else:
            arch, config = str(ref.arch), dict(ref.config)
        with torch.device("meta"):
            return build_model(arch, **config)
    except Exception:
        return None


def check_diffusion_skeleton(model: Any, field: str, ref: ModelRef) -> int | None:
    """Protocol check of a (skeleton) diffusion model; returns its number of timesteps T."""
    if model is None:
        return None
    missing = [a for a in ("betas", "alphas_cumprod", "num_classes", "class_conditional") if not hasattr(model, a)]
    if missing:
        raise SuiteError(
            f"{field}: model {describe_ref(ref)} is not a diffusion model (it lacks {', '.join(missing)})",
            hint="name an epsilon-prediction diffusion model, e.g. the zoo's <dataset>-diffusion",
        )
    return int(model.alphas_cumprod.shape[0])


class DiffusionParams(Params):
    """Parameters shared by the diffusion purifiers."""

    #: epsilon-prediction diffusion model (zoo name or checkpoint reference); default ``<dataset>-diffusion``
    diffusion_model: ModelRef | None = None
    #: diffusion time of the forward noising, a fraction of the schedule in (0, 1]
    t_star: float = Field(default=0.1, gt=0.0, le=1.0)
    #: reverse sampler: DDPM ancestral (stochastic) or DDIM (eta = 0, deterministic given x_t*)
    sampler: Sampler = "ddpm"
    #: reverse steps (evenly strided); None = every timestep from t* to 0
    steps: int | None = Field(default=None, ge=1, le=100_000)
    #: clamp the clean estimate x0_hat to the data range [-1, 1] at each step
    clip_denoised: bool = True

    @field_validator("diffusion_model", mode="before")
    @classmethod
    def _ref(cls, v: Any) -> Any:
        return {"zoo": v} if isinstance(v, str) else v


class DiffusionPurifier(Defense):
    """Base of forward-diffuse-then-reverse purifiers (not registered itself)."""

    Params: ClassVar[type[Params]] = DiffusionParams
    stochastic = True
    iterative = True
    #: offers the surrogate process (``gradient: custom``, :meth:`custom_logits`)
    surrogate_process = True
    #: records the reverse chain's intermediate states in ``self.trajectory`` (DiffAttack)
    records_trajectory = True
    #: network images evaluated per sample and reverse step (eps net; guided variants add more)
    evals_per_step: ClassVar[int] = 1

    # -- validation ----------------------------------------------------------------------------
    @classmethod
    def _label(cls) -> str:
        return cls.__name__.lower()

    @classmethod
    def check_params(cls, params: ParamsModel, ctx: BuildContext | None) -> None:
        p = cast(DiffusionParams, params)
        ref = default_model_ref(p.diffusion_model, ctx, "-diffusion")
        if ref is None:
            return
        field = f"{cls._label()} params.diffusion_model"
        check_ref(ref, field)
        T = check_diffusion_skeleton(model_skeleton(ref), field, ref)
        if T is not None:
            cls._check_steps(p, T)

    @classmethod
    def _check_steps(cls, p: DiffusionParams, T: int) -> None:
        n = t_star_index(p.t_star, T) + 1
        if p.steps is not None and p.steps > n:
            raise SuiteError(
                f"{cls._label()} params.steps: {p.steps} reverse steps but t_star = {p.t_star} of a "
                f"{T}-step schedule is only {n} timesteps",
                hint=f"use steps <= {n}, or a larger t_star",
            )

    # -- construction -------------------------------------------------------------------------
    def __init__(self, params: ParamsModel, ctx: BuildContext) -> None:
        super().__init__(params, ctx)
        self._checkpoint = False
        p = cast(DiffusionParams, params)
        ref = default_model_ref(p.diffusion_model, ctx, "-diffusion")
        assert ref is not None
        self.diffusion = load_diffusion(ctx, ref, f"{self._label()} params.diffusion_model")
        self._abar = [float(a) for a in self.diffusion.alphas_cumprod.double().cpu().tolist()]
        T = len(self._abar)
        self._check_steps(p, T)
        self.t_start = t_star_index(p.t_star, T)
        self.timesteps = reverse_timesteps(self.t_start, p.steps)

    # -- the purifier ---------------------------------------------------------------------------
    def abar(self, t: int) -> float:
        return 1.0 if t < 0 else self._abar[t]

    def eps(self, x_t: Tensor, t: int, y: Tensor | None = None) -> Tensor:
        """The network's noise prediction at integer time ``t`` (counted in ``evals``)."""
        tt = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
        out: Tensor = self.diffusion(x_t, tt, y)
        return out

    def guided_eps(self, x_t: Tensor, t: int, guide: tuple[Tensor, ...]) -> Tensor:
        """Noise prediction used by the reverse step; guided subclasses override this."""
        return self.eps(x_t, t)

    def guide_state(self, x: Tensor, x_a: Tensor, z0: Tensor) -> tuple[Tensor, ...]:
        """Tensors the guidance needs, computed once per purification (part of the autograd graph)."""
        return ()

    def reverse_step(
        self, x_t: Tensor, noise: Tensor | None, t: int, s: int, *guide: Tensor, ddim: bool = False
    ) -> Tensor:
        """One reverse step ``t -> s`` (``s = -1``: to data); ``ddim`` forces the deterministic sampler."""
        p = cast(DiffusionParams, self.params)
        a_t, a_s = self.abar(t), self.abar(s)
        eps = self.guided_eps(x_t, t, guide)
        x0 = predict_x0(x_t, eps, a_t)
        if p.clip_denoised:
            x0 = x0.clamp(-1.0, 1.0)
        if ddim or p.sampler == "ddim":
            if p.clip_denoised:
                eps = (x_t - math.sqrt(a_t) * x0) / math.sqrt(1.0 - a_t)
            return math.sqrt(a_s) * x0 + math.sqrt(1.0 - a_s) * eps
        c0, ct, var = ddpm_coefficients(a_t, a_s)
        out = c0 * x0 + ct * x_t
        if noise is not None and var > 0:
            out = out + math.sqrt(var) * noise
        return out

    def purify(self, x: Tensor, *, rng: SampleRNG | None = None) -> Tensor:
        if rng is None:
            raise RobbenchError(
                f"{self._label()} is stochastic and was called without its random streams",
                hint="pass a robbench.core.seeding.SampleRNG (rng=...)",
            )
        p = cast(DiffusionParams, self.params)
        b = x.shape[0]
        x_a = to_diffusion(x)
        # every draw up front, in a fixed order: forward noise, then one per stochastic reverse step
        z0 = rng.randn_like(x)
        seq = self.timesteps
        nxt = [*seq[1:], -1]
        noises = [rng.randn_like(x) if (p.sampler == "ddpm" and s >= 0) else None for s in nxt]
        guide = self.guide_state(x, x_a, z0)
        x_t = q_sample(x_a, self.abar(self.t_start), z0)
        use_ckpt = bool(getattr(self, "_checkpoint", False)) and torch.is_grad_enabled() and x_t.requires_grad
        for t, s, noise in zip(seq, nxt, noises):
            if use_ckpt:
                x_t = checkpoint(self.reverse_step, x_t, noise, t, s, *guide, use_reentrant=False)
            else:
                x_t = self.reverse_step(x_t, noise, t, s, *guide)
            self.evals += b * self.evals_per_step
            if self.trajectory is not None and s >= 0:
                self.trajectory.append((self.abar(s), x_t))
        return from_diffusion(x_t).clamp(0.0, 1.0)

    # -- the surrogate process (Lee & Kim, ICCV 2023): gradient mode ``custom`` ------------------------
    def surrogate_timesteps(self) -> list[int]:
        """The surrogate's reverse timesteps: half of the real ones (at least one), same t*."""
        return reverse_timesteps(self.t_start, max(1, (len(self.timesteps) + 1) // 2))

    def custom_logits(self, x: Tensor, rng: SampleRNG | None) -> Tensor:
        """Logits through the surrogate process: the real forward noising (the same first draw ``z0``, so
        ``det`` holds the judge's noise) and guidance, then a deterministic DDIM reverse pass with half the
        steps, differentiated exactly (checkpointed like the real purifier). The judge uses the real one."""
        if rng is None:
            raise RobbenchError(f"{self._label()}: the surrogate process needs the random streams", hint="pass rng")
        x_a = to_diffusion(x)
        z0 = rng.randn_like(x)
        guide = self.guide_state(x, x_a, z0)
        x_t = q_sample(x_a, self.abar(self.t_start), z0)
        seq = self.surrogate_timesteps()
        use_ckpt = bool(getattr(self, "_checkpoint", False)) and torch.is_grad_enabled() and x_t.requires_grad
        for t, s in zip(seq, [*seq[1:], -1]):
            if use_ckpt:
                x_t = checkpoint(self.reverse_step, x_t, None, t, s, *guide, ddim=True, use_reentrant=False)
            else:
                x_t = self.reverse_step(x_t, None, t, s, *guide, ddim=True)
            self.evals += x.shape[0] * self.evals_per_step
        return self.classify(from_diffusion(x_t).clamp(0.0, 1.0))


def load_diffusion(ctx: BuildContext, ref: ModelRef, field: str) -> DiffusionModel:
    """Load a diffusion model through the build context and check it follows the protocol."""
    model = ctx.model(ref)
    if not isinstance(model, DiffusionModel):
        raise SuiteError(
            f"{field}: model {describe_ref(ref)} is not a diffusion model "
            "(needs betas, alphas_cumprod, num_classes, class_conditional)",
            hint="name an epsilon-prediction diffusion model, e.g. the zoo's <dataset>-diffusion",
        )
    return model
