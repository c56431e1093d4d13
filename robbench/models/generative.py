"""Interfaces of the generative models the purifiers use. Architectures implement these.

Score models (NCSN-style; PurSAMERE, ScoreOpt, ADP)
    ``ScoreModel``: ``forward(x, sigma) -> s`` with ``x`` in **pixel space [0, 1]** (B, C, H, W),
    ``sigma`` a (B,) float tensor, ``s ~ grad_x log p_sigma(x)`` (NCSNv2 parameterisation
    ``f(x, sigma) / sigma``). Buffer ``sigmas``: the geometric training ladder, descending.
    ``tweedie(model, x, sigma)`` is the MMSE denoiser ``x + sigma^2 s(x, sigma)``.

Diffusion models (DDPM epsilon-prediction, VP schedule; DiffPure, GDMP, RDC, AGDM)
    ``DiffusionModel``: ``forward(x_t, t, y=None) -> eps_hat`` with ``x_t`` in the model's
    **[-1, 1] data space** (use :func:`to_diffusion` / :func:`from_diffusion`), ``t`` a (B,) long
    tensor in [0, T), ``y`` a (B,) long tensor of class labels or ``None`` (unconditional; the
    architecture maps it to its null class ``num_classes``). Buffers ``betas`` and
    ``alphas_cumprod`` (T,). Attributes ``num_classes`` and ``class_conditional`` (True when it
    was trained with labels, with label dropout to the null class).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class ScoreModel(Protocol):
    sigmas: Tensor

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor: ...


@runtime_checkable
class DiffusionModel(Protocol):
    betas: Tensor
    alphas_cumprod: Tensor
    num_classes: int
    class_conditional: bool

    def __call__(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor: ...


def tweedie(model: ScoreModel, x: Tensor, sigma: float | Tensor) -> Tensor:
    """MMSE denoiser ``D(x, sigma) = x + sigma^2 s(x, sigma)``."""
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    s = s.expand(x.shape[0]) if s.ndim == 0 else s
    return x + s.view(-1, *[1] * (x.ndim - 1)) ** 2 * model(x, s)


def to_diffusion(x: Tensor) -> Tensor:
    """Pixels [0, 1] -> diffusion data space [-1, 1]."""
    return x * 2 - 1


def from_diffusion(x: Tensor) -> Tensor:
    """Diffusion data space [-1, 1] -> pixels [0, 1] (not clamped)."""
    return (x + 1) / 2


def vp_schedule(timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> tuple[Tensor, Tensor]:
    """Linear VP (DDPM) schedule: ``betas`` and ``alphas_cumprod``, float32, shape (T,)."""
    betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, dim=0)
    return betas.float(), abar.float()


def geometric_sigmas(sigma_max: float, sigma_min: float, n: int) -> Tensor:
    """Descending geometric noise ladder ``sigma_max -> sigma_min`` with ``n`` levels."""
    return torch.exp(torch.linspace(torch.log(torch.tensor(sigma_max)), torch.log(torch.tensor(sigma_min)), n))
