"""Building blocks shared by the zoo's generative U-Nets (score and diffusion models).

A small conditional U-Net: residual blocks with GroupNorm and SiLU whose features are shifted and
scaled by a conditioning embedding (noise level, timestep, class), average-pool downsampling,
nearest upsampling to the skip's exact size (so odd sizes such as 7x7 work), skip connections by
concatenation. Sized by ``channels`` (base width) and ``depth`` (number of downsamplings).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def _groups(ch: int) -> int:
    for g in (8, 4, 2, 1):
        if ch % g == 0:
            return g
    return 1


def sinusoidal_embedding(v: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Transformer-style sin/cos features of a (B,) float tensor, shape (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=v.device) / max(half, 1))
    args = v.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, conditioning by a per-channel scale and shift, residual skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        out: Tensor = self.skip(x) + h
        return out


class CondUNet(nn.Module):
    """Conditional U-Net backbone: ``forward(x, emb) -> (B, out_channels, H, W)``.

    Widths per level: ``channels * mults[i]`` with ``mults = (1, 2, 2, 2, ...)`` over ``depth + 1``
    levels; one residual block per level on the way down and two on the way up.
    """

    def __init__(self, in_channels: int, out_channels: int, channels: int, depth: int, emb_dim: int) -> None:
        super().__init__()
        if depth < 0:
            raise ValueError("depth must be >= 0")
        widths = [channels * (1 if i == 0 else 2) for i in range(depth + 1)]
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.down = nn.ModuleList()
        c = channels
        for w in widths:
            self.down.append(ResBlock(c, w, emb_dim))
            c = w
        self.mid = ResBlock(c, c, emb_dim)
        self.up = nn.ModuleList()
        for w in reversed(widths):
            self.up.append(ResBlock(c + w, w, emb_dim))
            c = w
        self.norm_out = nn.GroupNorm(_groups(c), c)
        self.conv_out = nn.Conv2d(c, out_channels, 3, padding=1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv_in(x)
        skips = []
        for i, block in enumerate(self.down):
            if i > 0:
                h = F.avg_pool2d(h, 2)
            h = block(h, emb)
            skips.append(h)
        h = self.mid(h, emb)
        for block in self.up:
            s = skips.pop()
            if h.shape[-2:] != s.shape[-2:]:
                h = F.interpolate(h, size=s.shape[-2:], mode="nearest")
            h = block(torch.cat([h, s], dim=1), emb)
        out: Tensor = self.conv_out(F.silu(self.norm_out(h)))
        return out
