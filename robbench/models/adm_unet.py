"""guided-diffusion's ADM UNet: the ImageNet diffusion model DiffPure and GDMP purify with.

Dhariwal & Nichol, "Diffusion Models Beat GANs on Image Synthesis" (NeurIPS 2021); DiffPure (Nie et al. 2022)
and GDMP (Wang et al. 2022) purify ImageNet with its unconditional ``256x256_diffusion_uncond.pt``. robbench's
own implementation of the UNet of ``guided_diffusion/unet.py`` (2-D, legacy attention order, optional
scale-shift norm and residual up/down-sampling); module names and shapes are the official ones, and the
official files are plain state dicts, so they load weights-only with ``format: state_dict``.

As a :class:`robbench.models.generative.DiffusionModel`: the linear 1000-step DDPM schedule (beta 1e-4 ->
0.02, scaled by 1000 / T as guided-diffusion's ``linear`` schedule), the network called with the integer
timestep (guided-diffusion's default ``rescale_timesteps=False``); with ``learn_sigma`` the network's first
``in_channels`` output channels are the noise estimate (the others, the variance interpolation, are unused:
robbench's samplers use the fixed posterior variance).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, ch)


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """guided-diffusion's sinusoidal embedding: cosines then sines, ``dim // 2`` frequencies each."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class Resample(nn.Module):
    """Upsample (nearest x2, optional 3x3 conv ``conv``) or Downsample (stride-2 3x3 conv ``op``, or mean pool)."""

    def __init__(self, ch: int, up: bool, use_conv: bool) -> None:
        super().__init__()
        self.up, self.use_conv = up, use_conv
        if use_conv and up:
            self.conv = nn.Conv2d(ch, ch, 3, padding=1)
        elif use_conv:
            self.op = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            return self.conv(x) if self.use_conv else x
        return self.op(x) if self.use_conv else F.avg_pool2d(x, 2)


class ResBlock(nn.Module):
    """ADM's residual block: GN-SiLU-conv, timestep embedding (added, or as scale-shift of the second norm)."""

    def __init__(self, cin: int, emb: int, dropout: float, cout: int | None, scale_shift: bool, updown: str = ""):
        super().__init__()
        cout = cout or cin
        self.scale_shift, self.updown = scale_shift, updown
        self.in_layers = nn.Sequential(_norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb, 2 * cout if scale_shift else cout))
        self.out_layers = nn.Sequential(
            _norm(cout), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(cout, cout, 3, padding=1)
        )
        self.skip_connection: nn.Module = nn.Identity() if cout == cin else nn.Conv2d(cin, cout, 1)

    def _resample(self, x: Tensor) -> Tensor:
        if self.updown == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return F.avg_pool2d(x, 2) if self.updown == "down" else x

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_layers[:-1](x)
        h, x = self._resample(h), self._resample(x)
        h = self.in_layers[-1](h)
        e = self.emb_layers(emb)[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[1:](self.out_layers[0](h) * (1 + scale) + shift)
        else:
            h = self.out_layers(h + e)
        out: Tensor = self.skip_connection(x) + h
        return out


class AttentionBlock(nn.Module):
    """ADM's self-attention over positions (legacy order: heads split before q, k, v)."""

    def __init__(self, ch: int, num_heads: int, num_head_channels: int) -> None:
        super().__init__()
        self.heads = ch // num_head_channels if num_head_channels != -1 else num_heads
        self.norm = _norm(ch)
        self.qkv = nn.Conv1d(ch, ch * 3, 1)
        self.proj_out = nn.Conv1d(ch, ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        ch = c // self.heads
        q, k, v = qkv.reshape(b * self.heads, ch * 3, -1).split(ch, dim=1)
        scale = 1 / math.sqrt(math.sqrt(ch))
        w = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale), dim=-1)
        h = torch.einsum("bts,bcs->bct", w, v).reshape(b, c, -1)
        out: Tensor = (x + self.proj_out(h)).reshape(b, c, *spatial)
        return out


class EmbedSequential(nn.Sequential):
    """guided-diffusion's TimestepEmbedSequential: residual blocks get the embedding, other layers do not."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class ADMUNet(nn.Module):
    """guided-diffusion's UNetModel as an epsilon-prediction :class:`DiffusionModel`.

    Config (guided-diffusion's names, with ``attention_ds`` the downsampling rates ``image_size // res`` that
    its ``create_model`` derives from ``attention_resolutions``): ``image_size`` (256), ``in_channels`` (3),
    ``model_channels`` (256), ``learn_sigma`` (True: 2 x in_channels outputs), ``num_res_blocks`` (2),
    ``attention_ds`` ((8, 16, 32): resolutions 32, 16, 8 at 256), ``channel_mult`` ((1, 1, 2, 2, 4, 4)),
    ``num_heads`` (4), ``num_head_channels`` (64), ``use_scale_shift_norm`` (True), ``resblock_updown`` (True),
    ``conv_resample`` (True), ``num_classes`` (None: unconditional), ``dropout`` (0), ``timesteps`` (1000). The
    defaults are ``256x256_diffusion_uncond.pt``'s flags; built from the official code with them the network
    has 552,814,086 parameters (docs/checkpoints.md).
    """

    betas: Tensor
    alphas_cumprod: Tensor
    example_config: ClassVar[dict[str, Any]] = {
        "image_size": 8,
        "in_channels": 1,
        "model_channels": 32,
        "channel_mult": [1, 2],
        "num_res_blocks": 1,
        "attention_ds": [2],
        "num_head_channels": 16,
        "timesteps": 20,
    }
    example_input_shape: ClassVar[tuple[int, int, int]] = (1, 8, 8)

    def __init__(
        self,
        image_size: int = 256,
        in_channels: int = 3,
        model_channels: int = 256,
        learn_sigma: bool = True,
        num_res_blocks: int = 2,
        attention_ds: tuple[int, ...] | list[int] = (8, 16, 32),
        channel_mult: tuple[float, ...] | list[float] = (1, 1, 2, 2, 4, 4),
        num_heads: int = 4,
        num_head_channels: int = 64,
        use_scale_shift_norm: bool = True,
        resblock_updown: bool = True,
        conv_resample: bool = True,
        num_classes: int | None = None,
        dropout: float = 0.0,
        timesteps: int = 1000,
    ) -> None:
        super().__init__()
        self.in_channels, self.model_channels = in_channels, model_channels
        self.num_classes, self.class_conditional = num_classes or 1, num_classes is not None
        scale = 1000 / timesteps
        betas = torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alphas_cumprod", torch.cumprod(1 - betas, 0).float(), persistent=False)
        emb = model_channels * 4
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb), nn.SiLU(), nn.Linear(emb, emb))
        if num_classes is not None:
            self.label_emb = nn.Embedding(num_classes, emb)
        res: dict[str, Any] = {"emb": emb, "dropout": dropout, "scale_shift": use_scale_shift_norm}
        attn: dict[str, Any] = {"num_heads": num_heads, "num_head_channels": num_head_channels}
        self._res, self._attn, self._updown, self._conv = res, attn, resblock_updown, conv_resample
        mults, att = [int(m * model_channels) for m in channel_mult], {int(d) for d in attention_ds}
        ch = mults[0]
        self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(in_channels, ch, 3, padding=1))])
        chans, ds = [ch], 1
        for level, width in enumerate(mults):
            for _ in range(num_res_blocks):
                self.input_blocks.append(self._level_block(ch, width, ds in att))
                ch = width
                chans.append(ch)
            if level != len(mults) - 1:
                self.input_blocks.append(EmbedSequential(self._resampler(ch, up=False)))
                chans.append(ch)
                ds *= 2
        self.middle_block = EmbedSequential(
            ResBlock(ch, cout=None, **res), AttentionBlock(ch, **attn), ResBlock(ch, cout=None, **res)
        )
        self.output_blocks = nn.ModuleList()
        for level, width in list(enumerate(mults))[::-1]:
            for i in range(num_res_blocks + 1):
                block = self._level_block(ch + chans.pop(), width, ds in att)
                ch = width
                if level and i == num_res_blocks:
                    block.append(self._resampler(ch, up=True))
                    ds //= 2
                self.output_blocks.append(block)
        out_ch = in_channels * (2 if learn_sigma else 1)
        self.out = nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv2d(ch, out_ch, 3, padding=1))

    def _level_block(self, cin: int, cout: int, attention: bool) -> EmbedSequential:
        layers: list[nn.Module] = [ResBlock(cin, cout=cout, **self._res)]
        return EmbedSequential(*layers, *([AttentionBlock(cout, **self._attn)] if attention else []))

    def _resampler(self, ch: int, up: bool) -> nn.Module:
        if self._updown:
            return ResBlock(ch, cout=ch, updown="up" if up else "down", **self._res)
        return Resample(ch, up, self._conv)

    def network(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """The official forward: ``x`` in [-1, 1], ``t`` (B,) timesteps, ``y`` labels of a conditional model."""
        emb = self.time_embed(timestep_embedding(t, self.model_channels))
        if self.class_conditional:
            if y is None or bool((y >= self.num_classes).any()):
                raise ValueError("this ADM model is class-conditional and has no null class: give labels < num_classes")
            emb = emb + self.label_emb(y)
        hs, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        out: Tensor = self.out(h)
        return out

    def forward(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        return self.network(x_t, t, y)[:, : self.in_channels]
