"""AGDM: diffusion purification guided by the latent features of an adversarially trained network."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, cast

import torch
from pydantic import Field, field_validator
from torch import Tensor, nn

from robbench.core.components import BuildContext, Params, ParamsModel
from robbench.core.refs import ModelRef
from robbench.defenses.diffusion_common import (
    DiffusionParams,
    DiffusionPurifier,
    check_ref,
    default_model_ref,
    predict_x0,
)
from robbench.errors import SuiteError
from robbench.models.generative import from_diffusion

FeatureFn = Callable[[Tensor], Tensor]


def latent_features(model: nn.Module) -> FeatureFn:
    """The latent (penultimate-layer) feature map of a classifier, as a function of [0, 1] pixels.

    A model's own ``latent(x)`` method when it has one (the zoo's ``small_cnn`` does); otherwise the
    input of its last ``nn.Linear`` module (in registration order), captured by a forward pre-hook.
    """
    own = getattr(model, "latent", None)
    if callable(own):
        return cast(FeatureFn, own)
    last: nn.Linear | None = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    if last is None:
        raise SuiteError(
            f"agdm params.aux_model: {type(model).__name__} has neither a latent() method nor a final "
            "linear layer, so its latent features are undefined",
            hint="use a classifier whose last layer is nn.Linear, or give it a latent(x) method",
        )
    layer = last

    def features(x: Tensor) -> Tensor:
        store: dict[str, Tensor] = {}

        def grab(_mod: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            store["z"] = inputs[0]

        handle = layer.register_forward_pre_hook(grab)
        try:
            model(x)
        finally:
            handle.remove()
        return store["z"].flatten(1)

    return features


class AGDMParams(DiffusionParams):
    #: the adversarially trained auxiliary network (zoo name or checkpoint); default ``<dataset>-cnn-adv``
    aux_model: ModelRef | None = None
    #: guidance weight w (0 = DiffPure)
    guidance_scale: float = Field(default=0.5, ge=0.0, le=1e6)

    @field_validator("aux_model", mode="before")
    @classmethod
    def _aux(cls, v: Any) -> Any:
        return {"zoo": v} if isinstance(v, str) else v


class AGDM(DiffusionPurifier):
    """AGDM: reverse diffusion from t* guided to keep an adversarially trained net's latent features.

    Paper: Lei et al., "Adversarial Guided Diffusion Models for Adversarial Purification"
    (arXiv 2403.16067, 2024). Threat norms: all. Stochastic (forward noise, DDPM noise).

    Forward-diffuse the input x_a to t*, then run the reverse chain with the potential
    ``D_t(x_t) = || h(x0_hat(x_t)) - h(x_a) ||^2`` (summed over feature dimensions), where ``h`` is
    the latent (penultimate-layer) feature map of the auxiliary adversarially trained network and
    ``x0_hat`` the model's clean estimate (in pixels, unclamped so the guidance sees every pixel).
    The guidance gradient ``grad_{x_t} D_t`` (backpropagated through the diffusion network and the
    auxiliary network) enters as ``eps' = eps_hat + w * sqrt(1 - abar_t) * grad D_t``, i.e. the
    mean shift ``-w * Sigma_t * grad D_t`` of classifier guidance for DDPM; then the base classifier.

    Parameters: those of ``diffpure`` plus ``aux_model`` (default the zoo's ``<dataset>-cnn-adv``;
    a missing one is a validation error) and ``guidance_scale`` w (default 0.5: our choice, tuned
    on digits with the zoo's small CNN, 5 reverse steps from t* = 0.1; the paper tunes it per data set;
    the right w scales inversely with the auxiliary network's feature magnitudes).

    Choices where the summary is silent: squared Euclidean feature distance; features of the
    penultimate layer (``latent()`` of the zoo's small CNN, otherwise the input of the last linear
    layer); the guidance is computed at every reverse step; in full-gradient mode the attack
    differentiates through the guidance gradient itself (second-order terms included), with each
    reverse step checkpointed. Cost: two network images per step (diffusion net and auxiliary net,
    forward; backward passes are not counted) plus one auxiliary evaluation of the input.
    """

    Params: ClassVar[type[Params]] = AGDMParams
    example_params: ClassVar[dict[str, object]] = {
        "diffusion_model": "tiny-diffusion-digits",
        "t_star": 0.1,
        "steps": 3,
        "aux_model": "digits-cnn",
        "guidance_scale": 0.05,
    }
    evals_per_step = 2

    @classmethod
    def check_params(cls, params: ParamsModel, ctx: BuildContext | None) -> None:
        super().check_params(params, ctx)
        p = cast(AGDMParams, params)
        ref = default_model_ref(p.aux_model, ctx, "-cnn-adv")
        if ref is not None:
            check_ref(ref, "agdm params.aux_model", generative=False)

    def __init__(self, params: ParamsModel, ctx: BuildContext) -> None:
        super().__init__(params, ctx)
        p = cast(AGDMParams, params)
        ref = default_model_ref(p.aux_model, ctx, "-cnn-adv")
        assert ref is not None
        self.aux = ctx.model(ref)
        self.features = latent_features(self.aux)

    def guide_state(self, x: Tensor, x_a: Tensor, z0: Tensor) -> tuple[Tensor, ...]:
        self.evals += x.shape[0]
        return (self.features(x),)

    def guided_eps(self, x_t: Tensor, t: int, guide: tuple[Tensor, ...]) -> Tensor:
        w = float(cast(AGDMParams, self.params).guidance_scale)
        if w == 0.0:
            return self.eps(x_t, t)
        (h_a,) = guide
        a_t = self.abar(t)
        outer = torch.is_grad_enabled() and x_t.requires_grad
        with torch.enable_grad():
            xi = x_t if outer else x_t.detach().requires_grad_(True)
            eps = self.eps(xi, t)
            x0 = predict_x0(xi, eps, a_t)
            dist = (self.features(from_diffusion(x0)) - (h_a if outer else h_a.detach())).pow(2).sum()
            (grad,) = torch.autograd.grad(dist, xi, create_graph=outer)
        if not outer:
            eps, grad = eps.detach(), grad.detach()
        return eps + w * math.sqrt(1.0 - a_t) * grad
