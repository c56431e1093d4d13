"""A noise-conditional score network (NCSN-style) with a geometric noise ladder."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from robbench.models.generative import geometric_sigmas
from robbench.models.unet import CondUNet, sinusoidal_embedding


class ScoreUNet(nn.Module):
    """Noise-conditional score U-Net, NCSNv2 parameterisation s(x, sigma) = f(x, sigma) / sigma.

    Implements :class:`robbench.models.generative.ScoreModel`: ``forward(x, sigma)`` with ``x`` in
    pixel space [0, 1] (plus noise), ``sigma`` a (B,) tensor, returns the score estimate
    ``grad_x log p_sigma(x)``. Buffer ``sigmas``: the geometric training ladder, descending from
    ``sigma_max`` to ``sigma_min`` in ``num_scales`` levels (Song & Ermon 2020, technique 1-2).

    Config: ``in_channels`` (1), ``channels`` (base width, 32), ``depth`` (downsamplings, 2),
    ``sigma_max`` (1.0), ``sigma_min`` (0.01), ``num_scales`` (20), ``emb_dim`` (4 * channels).

    Choices beyond NCSNv2: the network is conditioned on ``log sigma`` (sinusoidal features through
    an MLP scaling and shifting every residual block; NCSNv2 is unconditional and only divides by
    sigma), and its input is centred and scaled, ``(x - 0.5) / sqrt(0.25 + sigma^2)``, so it sees
    unit-scale inputs at every noise level (the EDM input preconditioning). Any positive sigma is
    accepted, not only the ladder's levels.
    """

    sigmas: Tensor

    example_config: ClassVar[dict[str, Any]] = {"in_channels": 1, "channels": 8, "depth": 1, "num_scales": 4}

    #: an input (C, H, W) that ``example_config`` accepts (the registry contract tests use it)

    example_input_shape: ClassVar[tuple[int, int, int]] = (1, 8, 8)

    def __init__(
        self,
        in_channels: int = 1,
        channels: int = 32,
        depth: int = 2,
        sigma_max: float = 1.0,
        sigma_min: float = 0.01,
        num_scales: int = 20,
        emb_dim: int | None = None,
    ) -> None:
        super().__init__()
        if not (sigma_max > sigma_min > 0):
            raise TypeError(f"need sigma_max > sigma_min > 0, got {sigma_max} and {sigma_min}")
        if num_scales < 1:
            raise TypeError(f"num_scales must be >= 1, got {num_scales}")
        self.in_channels = in_channels
        self.emb_dim = emb_dim or 4 * channels
        self.register_buffer("sigmas", geometric_sigmas(sigma_max, sigma_min, num_scales).float())
        self.sigma_embed = nn.Sequential(
            nn.Linear(channels, self.emb_dim), nn.SiLU(), nn.Linear(self.emb_dim, self.emb_dim)
        )
        self.net = CondUNet(in_channels, in_channels, channels, depth, self.emb_dim)
        self._feat = channels

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        s4 = sigma.view(-1, 1, 1, 1)
        h = (x - 0.5) / torch.sqrt(0.25 + s4**2)
        emb = self.sigma_embed(sinusoidal_embedding(torch.log(sigma) * 10.0, self._feat))
        out: Tensor = self.net(h, emb) / s4
        return out
