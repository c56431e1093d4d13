"""score_sde's DDPM++ (NCSN++ code, VP, continuous): the network DiffPure uses on CIFAR-10.

Song et al., "Score-Based Generative Modeling through Stochastic Differential Equations", ICLR 2021;
DiffPure (Nie et al., ICML 2022) purifies CIFAR-10 with its ``vp/cifar10_ddpmpp_deep_continuous``
checkpoint (``checkpoint_8.pth``). robbench's own implementation of the configuration those models use
(BigGAN residual blocks without FIR, DDPM attention, positional time embedding, rescaled skips, no
progressive paths); its parameter names, shapes and order are the official code's, so the official
checkpoints load through checkpoint format ``score_sde`` (:mod:`robbench.zoo.external`), EMA weights
preferred as the official sampler does.

As a :class:`robbench.models.generative.DiffusionModel`: the VP SDE (beta 0.1 -> 20) discretised in
``num_scales`` steps is the DDPM schedule ``betas = linspace(beta_min, beta_max, N) / N``; step ``t``
is continuous time ``(t + 1) / N``, which the network receives as the label ``999 (t + 1) / N`` as in
score_sde's VP score function; its output is the noise estimate (score_sde's score is minus it over
the marginal std). Unconditional (one placeholder class, labels ignored).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(ch // 4, 32), num_channels=ch, eps=1e-6)


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=k, padding=k // 2)


def time_embedding(t: Tensor, dim: int, max_positions: int = 10_000) -> Tensor:
    """Sinusoidal embedding of (B,) float times: sines then cosines, ``dim // 2`` frequencies each."""
    half = dim // 2
    freqs = torch.exp(
        torch.arange(half, dtype=torch.float32, device=t.device) * -(math.log(max_positions) / (half - 1))
    )
    args = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class NIN(nn.Module):
    """A 1x1 linear map over channels with weight ``W`` (in, out) and bias ``b`` (the official names)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.zeros(cin, cout))
        self.b = nn.Parameter(torch.zeros(cout))

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("bchw,co->bohw", x, self.W) + self.b[None, :, None, None]


class Attention(nn.Module):
    """Single-head self-attention over positions, residual, rescaled by 1/sqrt(2)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.GroupNorm_0 = _norm(ch)
        self.NIN_0, self.NIN_1, self.NIN_2, self.NIN_3 = NIN(ch, ch), NIN(ch, ch), NIN(ch, ch), NIN(ch, ch)

    def forward(self, x: Tensor) -> Tensor:
        b, c, hh, ww = x.shape
        h = self.GroupNorm_0(x)
        q, k, v = self.NIN_0(h).flatten(2), self.NIN_1(h).flatten(2), self.NIN_2(h).flatten(2)
        w = torch.softmax(torch.einsum("bcp,bcq->bpq", q, k) * c**-0.5, dim=-1)
        h = torch.einsum("bpq,bcq->bcp", w, v).view(b, c, hh, ww)
        out: Tensor = (x + self.NIN_3(h)) / math.sqrt(2.0)
        return out


class ResBlock(nn.Module):
    """BigGAN-style residual block, optionally resampling by 2 (nearest up, mean-pool down), rescaled skip."""

    def __init__(self, cin: int, cout: int | None, temb: int, dropout: float, up: bool = False, down: bool = False):
        super().__init__()
        cout = cout or cin
        self.GroupNorm_0 = _norm(cin)
        self.Conv_0 = _conv(cin, cout)
        self.Dense_0 = nn.Linear(temb, cout)
        self.GroupNorm_1 = _norm(cout)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = _conv(cout, cout)
        self.up, self.down = up, down
        self.Conv_2 = _conv(cin, cout, 1) if (cin != cout or up or down) else None

    def _resample(self, x: Tensor) -> Tensor:
        if self.up:
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.avg_pool2d(x, 2) if self.down else x

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self._resample(F.silu(self.GroupNorm_0(x)))
        x = self._resample(x)
        h = self.Conv_0(h) + self.Dense_0(F.silu(temb))[:, :, None, None]
        h = self.Conv_1(self.Dropout_0(F.silu(self.GroupNorm_1(h))))
        if self.Conv_2 is not None:
            x = self.Conv_2(x)
        out: Tensor = (x + h) / math.sqrt(2.0)
        return out


class NCSNpp(nn.Module):
    """score_sde's DDPM++ continuous VP network as an epsilon-prediction :class:`DiffusionModel`.

    Config (score_sde's names): ``nf`` (128), ``ch_mult`` ((1, 2, 2, 2)), ``num_res_blocks`` (8: the
    "deep" model DiffPure uses; 4: ``cifar10_ddpmpp_continuous``), ``attn_resolutions`` ((16,)),
    ``image_size`` (32), ``num_channels`` (3), ``dropout`` (0.1, inactive in eval), ``num_scales`` (1000),
    ``beta_min`` (0.1), ``beta_max`` (20), ``sigma_min`` (0.01) / ``sigma_max`` (50) (only the
    ``sigmas`` buffer the checkpoints carry). Built from the official code with the deep config it has
    106,632,579 parameters, with 4 blocks 61,804,419 (docs/checkpoints.md has the command).
    """

    betas: Tensor
    alphas_cumprod: Tensor
    sigmas: Tensor
    example_config: ClassVar[dict[str, Any]] = {
        "nf": 16,
        "ch_mult": [1, 2],
        "num_res_blocks": 1,
        "attn_resolutions": [4],
        "image_size": 8,
        "num_channels": 1,
        "num_scales": 20,
    }
    example_input_shape: ClassVar[tuple[int, int, int]] = (1, 8, 8)

    def __init__(
        self,
        nf: int = 128,
        ch_mult: tuple[int, ...] | list[int] = (1, 2, 2, 2),
        num_res_blocks: int = 8,
        attn_resolutions: tuple[int, ...] | list[int] = (16,),
        image_size: int = 32,
        num_channels: int = 3,
        dropout: float = 0.1,
        num_scales: int = 1000,
        beta_min: float = 0.1,
        beta_max: float = 20.0,
        sigma_min: float = 0.01,
        sigma_max: float = 50.0,
    ) -> None:
        super().__init__()
        self.nf, self.n_blocks, self.levels = nf, num_res_blocks, len(ch_mult)
        self.attn = {int(r) for r in attn_resolutions}
        self.num_classes, self.class_conditional, self.num_scales = 1, False, num_scales
        sig = torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), num_scales, dtype=torch.float64))
        self.register_buffer("sigmas", sig.float())
        betas = torch.linspace(beta_min / num_scales, beta_max / num_scales, num_scales, dtype=torch.float64)
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alphas_cumprod", torch.cumprod(1 - betas, 0).float(), persistent=False)
        self.all_modules = nn.ModuleList(self._layers(list(ch_mult), image_size, num_channels, dropout))

    def _layers(self, ch_mult: list[int], size: int, channels: int, dropout: float) -> list[nn.Module]:
        nf, temb = self.nf, 4 * self.nf
        mods: list[nn.Module] = [nn.Linear(nf, temb), nn.Linear(temb, temb), _conv(channels, nf)]
        skips, ch = [nf], nf
        for lvl, mult in enumerate(ch_mult):
            for _ in range(self.n_blocks):
                mods.append(ResBlock(ch, nf * mult, temb, dropout))
                ch = nf * mult
                if size >> lvl in self.attn:
                    mods.append(Attention(ch))
                skips.append(ch)
            if lvl != len(ch_mult) - 1:
                mods.append(ResBlock(ch, None, temb, dropout, down=True))
                skips.append(ch)
        mods += [ResBlock(ch, None, temb, dropout), Attention(ch), ResBlock(ch, None, temb, dropout)]
        for lvl in reversed(range(len(ch_mult))):
            for _ in range(self.n_blocks + 1):
                mods.append(ResBlock(ch + skips.pop(), nf * ch_mult[lvl], temb, dropout))
                ch = nf * ch_mult[lvl]
            if size >> lvl in self.attn:
                mods.append(Attention(ch))
            if lvl != 0:
                mods.append(ResBlock(ch, None, temb, dropout, up=True))
        return [*mods, _norm(ch), _conv(ch, channels)]

    def network(self, x: Tensor, label: Tensor) -> Tensor:
        """The official forward: ``x`` in [-1, 1], ``label`` (B,) float (999 t for continuous time t)."""
        mods = iter(self.all_modules)
        temb = next(mods)(time_embedding(label, self.nf))
        temb = next(mods)(F.silu(temb))
        hs = [next(mods)(x)]
        for lvl in range(self.levels):
            for _ in range(self.n_blocks):
                h = next(mods)(hs[-1], temb)
                if h.shape[-1] in self.attn:
                    h = next(mods)(h)
                hs.append(h)
            if lvl != self.levels - 1:
                hs.append(next(mods)(hs[-1], temb))
        first, attention, second = next(mods), next(mods), next(mods)
        h = second(attention(first(hs[-1], temb)), temb)
        for lvl in reversed(range(self.levels)):
            for _ in range(self.n_blocks + 1):
                h = next(mods)(torch.cat([h, hs.pop()], dim=1), temb)
            if h.shape[-1] in self.attn:
                h = next(mods)(h)
            if lvl != 0:
                h = next(mods)(h, temb)
        norm, conv = next(mods), next(mods)
        out: Tensor = conv(F.silu(norm(h)))
        return out

    def forward(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        label = (t.float() + 1) / self.num_scales * 999
        return self.network(x_t, label)
