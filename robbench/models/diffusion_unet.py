"""A class-conditional epsilon-prediction diffusion U-Net with a linear VP (DDPM) schedule."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from robbench.models.generative import vp_schedule
from robbench.models.unet import CondUNet, sinusoidal_embedding


class DiffusionUNet(nn.Module):
    """Class-conditional epsilon-prediction U-Net, linear VP schedule, null class for unconditional use.

    Implements :class:`robbench.models.generative.DiffusionModel`: ``forward(x_t, t, y=None)``
    with ``x_t`` in the [-1, 1] data space, ``t`` (B,) long in [0, T), ``y`` (B,) long class
    labels or ``None``, which (like label ``num_classes``) selects the learned null class. Buffers
    ``betas`` and ``alphas_cumprod`` (T,) of the linear schedule (Ho et al. 2020).

    Config: ``in_channels`` (1), ``num_classes`` (10), ``channels`` (32), ``depth`` (2),
    ``timesteps`` (1000), ``beta_start`` (1e-4), ``beta_end`` (0.02), ``class_conditional``
    (True: trained with labels and label dropout to the null class, classifier-free-guidance
    style, so one model serves conditional and unconditional use; False: labels are ignored and
    the null class is always used), ``emb_dim`` (4 * channels).

    Choices: timestep and class embeddings are summed and condition every residual block by a
    per-channel scale and shift; no attention layers (the zoo's models are small CPU models).
    """

    betas: Tensor
    alphas_cumprod: Tensor

    example_config: ClassVar[dict[str, Any]] = {"in_channels": 1, "channels": 8, "depth": 1, "timesteps": 20}

    #: an input (C, H, W) that ``example_config`` accepts (the registry contract tests use it)

    example_input_shape: ClassVar[tuple[int, int, int]] = (1, 8, 8)

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        channels: int = 32,
        depth: int = 2,
        timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        class_conditional: bool = True,
        emb_dim: int | None = None,
    ) -> None:
        super().__init__()
        if timesteps < 1 or not (0 < beta_start < beta_end < 1):
            raise TypeError(f"bad schedule: timesteps={timesteps}, beta_start={beta_start}, beta_end={beta_end}")
        self.in_channels = in_channels
        self.num_classes = int(num_classes)
        self.class_conditional = bool(class_conditional)
        self.emb_dim = emb_dim or 4 * channels
        betas, abar = vp_schedule(timesteps, beta_start, beta_end)
        self.register_buffer("betas", betas)
        self.register_buffer("alphas_cumprod", abar)
        self.time_embed = nn.Sequential(
            nn.Linear(channels, self.emb_dim), nn.SiLU(), nn.Linear(self.emb_dim, self.emb_dim)
        )
        self.class_embed = nn.Embedding(self.num_classes + 1, self.emb_dim)
        self.net = CondUNet(in_channels, in_channels, channels, depth, self.emb_dim)
        self._feat = channels

    @property
    def timesteps(self) -> int:
        return int(self.betas.shape[0])

    def forward(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        b = x_t.shape[0]
        t = torch.as_tensor(t, device=x_t.device)
        if t.ndim == 0:
            t = t.expand(b)
        if y is None or not self.class_conditional:
            y = torch.full((b,), self.num_classes, dtype=torch.long, device=x_t.device)
        emb = self.time_embed(sinusoidal_embedding(t.float(), self._feat)) + self.class_embed(y.long())
        out: Tensor = self.net(x_t, emb)
        return out

    def predict_x0(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """The denoiser: ``x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)`` in [-1, 1] space."""
        abar = self.alphas_cumprod[t].view(-1, *[1] * (x_t.ndim - 1))
        eps_hat: Tensor = self(x_t, t, y)
        return (x_t - torch.sqrt(1 - abar) * eps_hat) / torch.sqrt(abar)
