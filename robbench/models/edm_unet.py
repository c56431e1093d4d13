"""EDM's DDPM++ (SongUNet) under VP preconditioning: the class-conditional CIFAR-10 model RDC uses.

Karras et al., "Elucidating the Design Space of Diffusion-Based Generative Models" (NeurIPS 2022),
``edm-cifar10-32x32-cond-vp.pkl``; RDC (Chen et al., ICML 2024) classifies CIFAR-10 with it. robbench's own
implementation of the configuration those models use (positional noise embedding, standard encoder and
decoder, non-adaptive scale, one attention head); module names, parameter shapes and buffers are the
official ``training/networks.py``'s (``model.enc.32x32_block0.conv0.weight``, ...), so the official pickle
loads through checkpoint format ``edm`` (:mod:`robbench.zoo.edm_pickle`, which runs none of its code).

As a :class:`robbench.models.generative.DiffusionModel`: EDM's VP noise levels ``sigma(tau) = sqrt(exp(beta_d
tau^2 / 2 + beta_min tau) - 1)`` are discretised in ``M`` steps, step ``t`` at ``tau = (t + 1) / M``, so
``alphas_cumprod[t] = 1 / (1 + sigma(tau)^2)``. VPPrecond's denoiser ``D(x) = x - sigma F(x / sqrt(1 + sigma^2),
(M - 1) tau, y)`` makes ``F`` the noise estimate of the VP-scaled input, so ``forward(x_t, t, y) = F(x_t, (M -
1) tau_t, onehot(y))``. Labels ``None`` (or ``num_classes``) give the zero label vector, which is what
VPPrecond feeds when no label is given (the CIFAR-10 model was trained without label dropout, so this is
not a trained null class: a choice recorded here, used by RDC's likelihood objective).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(32, ch // 4), num_channels=ch, eps=1e-6)


class Conv(nn.Module):
    """EDM's Conv2d: optional up/down resampling by the separable ``resample_filter``, then a k x k conv."""

    resample_filter: Tensor | None

    def __init__(self, cin: int, cout: int, kernel: int, up: bool = False, down: bool = False, filt: Any = (1, 1)):
        super().__init__()
        self.cin, self.up, self.down = cin, up, down
        self.weight = nn.Parameter(torch.zeros(cout, cin, kernel, kernel)) if kernel else None
        self.bias = nn.Parameter(torch.zeros(cout)) if kernel else None
        f = torch.as_tensor(list(filt), dtype=torch.float32)
        f = torch.outer(f, f)[None, None] / f.sum().square()
        self.register_buffer("resample_filter", f if up or down else None)

    def init_weights_from(self, generator: torch.Generator) -> None:
        """PyTorch's default conv scheme from ``generator`` (for :func:`robbench.models.init_weights`)."""
        if self.weight is not None and self.bias is not None:
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        f = self.resample_filter
        if f is not None:
            pad = (f.shape[-1] - 1) // 2
            if self.up:
                x = F.conv_transpose2d(x, (f * 4).tile(self.cin, 1, 1, 1), groups=self.cin, stride=2, padding=pad)
            else:
                x = F.conv2d(x, f.tile(self.cin, 1, 1, 1), groups=self.cin, stride=2, padding=pad)
        if self.weight is not None:
            x = F.conv2d(x, self.weight, self.bias, padding=self.weight.shape[-1] // 2)
        return x


class Block(nn.Module):
    """EDM's UNetBlock as SongUNet configures it: additive embedding, skip scale 1/sqrt(2), one-head attention."""

    def __init__(
        self,
        cin: int,
        cout: int,
        emb: int,
        dropout: float,
        filt: Any,
        up: bool = False,
        down: bool = False,
        attention: bool = False,
    ) -> None:
        super().__init__()
        self.out_channels, self.attention, self.dropout = cout, attention, dropout
        self.norm0 = _norm(cin)
        self.conv0 = Conv(cin, cout, 3, up=up, down=down, filt=filt)
        self.affine = nn.Linear(emb, cout)
        self.norm1 = _norm(cout)
        self.conv1 = Conv(cout, cout, 3)
        self.skip = Conv(cin, cout, 1, up=up, down=down, filt=filt) if (cin != cout or up or down) else None
        if attention:
            self.norm2 = _norm(cout)
            self.qkv = Conv(cout, cout * 3, 1)
            self.proj = Conv(cout, cout, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        orig = x
        x = self.conv0(F.silu(self.norm0(x)))
        x = F.silu(self.norm1(x + self.affine(emb)[:, :, None, None]))
        x = self.conv1(F.dropout(x, p=self.dropout, training=self.training))
        x = (x + (self.skip(orig) if self.skip is not None else orig)) * math.sqrt(0.5)
        if self.attention:
            b, c = x.shape[:2]
            q, k, v = self.qkv(self.norm2(x)).reshape(b, c, 3, -1).unbind(2)  # channels interleaved (c, 3)
            w = torch.softmax(torch.einsum("ncq,nck->nqk", q, k / math.sqrt(c)), dim=2)
            x = (self.proj(torch.einsum("nqk,nck->ncq", w, v).reshape(x.shape)) + x) * math.sqrt(0.5)
        return x


class SongUNet(nn.Module):
    """EDM's SongUNet, DDPM++ configuration: the network ``F(x, noise_label, class_labels)``."""

    def __init__(
        self,
        res: int,
        channels: int,
        label_dim: int,
        augment_dim: int,
        model_channels: int,
        channel_mult: list[int],
        channel_mult_emb: int,
        num_blocks: int,
        attn: set[int],
        dropout: float,
        filt: list[int],
    ) -> None:
        super().__init__()
        mc, emb = model_channels, model_channels * channel_mult_emb
        self.noise_channels = mc
        self.map_label = nn.Linear(label_dim, mc) if label_dim else None
        self.map_augment = nn.Linear(augment_dim, mc, bias=False) if augment_dim else None
        self.map_layer0, self.map_layer1 = nn.Linear(mc, emb), nn.Linear(emb, emb)
        kw: dict[str, Any] = {"emb": emb, "dropout": dropout, "filt": filt}
        self.enc, self.dec = nn.ModuleDict(), nn.ModuleDict()
        cout = channels
        for level, mult in enumerate(channel_mult):
            r = res >> level
            if level == 0:
                self.enc[f"{r}x{r}_conv"], cout = Conv(cout, mc, 3), mc
            else:
                self.enc[f"{r}x{r}_down"] = Block(cout, cout, down=True, **kw)
            for i in range(num_blocks):
                self.enc[f"{r}x{r}_block{i}"] = Block(cout, mc * mult, attention=r in attn, **kw)
                cout = mc * mult
        skips = [m.out_channels if isinstance(m, Block) else mc for m in self.enc.values()]
        for level, mult in reversed(list(enumerate(channel_mult))):
            r = res >> level
            if level == len(channel_mult) - 1:
                self.dec[f"{r}x{r}_in0"] = Block(cout, cout, attention=True, **kw)
                self.dec[f"{r}x{r}_in1"] = Block(cout, cout, **kw)
            else:
                self.dec[f"{r}x{r}_up"] = Block(cout, cout, up=True, **kw)
            for i in range(num_blocks + 1):
                self.dec[f"{r}x{r}_block{i}"] = Block(
                    cout + skips.pop(), mc * mult, attention=i == num_blocks and r in attn, **kw
                )
                cout = mc * mult
        self.dec[f"{res}x{res}_aux_norm"] = _norm(cout)
        self.dec[f"{res}x{res}_aux_conv"] = Conv(cout, channels, 3)

    def embed(self, noise: Tensor, labels: Tensor | None) -> Tensor:
        half = self.noise_channels // 2
        freqs = (1 / 10_000) ** (torch.arange(half, dtype=torch.float32, device=noise.device) / (half - 1))
        args = torch.outer(noise.float(), freqs)
        emb = torch.cat([args.sin(), args.cos()], dim=1)  # EDM's cos-then-sin embedding with halves swapped
        if self.map_label is not None and labels is not None:
            emb = emb + self.map_label(labels * math.sqrt(self.map_label.in_features))
        return F.silu(self.map_layer1(F.silu(self.map_layer0(emb))))

    def forward(self, x: Tensor, noise: Tensor, labels: Tensor | None) -> Tensor:
        emb = self.embed(noise, labels)
        skips = []
        for block in self.enc.values():
            x = block(x, emb) if isinstance(block, Block) else block(x)
            skips.append(x)
        for name, block in self.dec.items():
            if name.endswith("aux_norm"):
                x = F.silu(block(x))
            elif name.endswith("aux_conv"):
                x = block(x)
            else:
                x = block(torch.cat([x, skips.pop()], dim=1) if "_block" in name else x, emb)
        return x


class EDMVP(nn.Module):
    """EDM's VPPrecond around its DDPM++ SongUNet, as an epsilon-prediction :class:`DiffusionModel`.

    Config (EDM's names): ``img_resolution`` (32), ``img_channels`` (3), ``label_dim`` (10; 0 =
    unconditional), ``augment_dim`` (9: the CIFAR-10 models' augmentation labels, unused at inference),
    ``model_channels`` (128), ``channel_mult`` ((2, 2, 2)), ``channel_mult_emb`` (4), ``num_blocks`` (4),
    ``attn_resolutions`` ((16,)), ``dropout`` (0.13, inactive in eval), ``resample_filter`` ((1, 1)), ``beta_d``
    (19.9), ``beta_min`` (0.1), ``M`` (1000). The defaults are ``edm-cifar10-32x32-cond-vp``; built from the
    official code at that configuration it has 55,735,299 parameters (docs/checkpoints.md has the command).
    """

    betas: Tensor
    alphas_cumprod: Tensor
    taus: Tensor
    example_config: ClassVar[dict[str, Any]] = {
        "img_resolution": 8,
        "img_channels": 1,
        "model_channels": 16,
        "channel_mult": [1, 2],
        "num_blocks": 1,
        "attn_resolutions": [4],
        "M": 20,
    }
    example_input_shape: ClassVar[tuple[int, int, int]] = (1, 8, 8)

    def __init__(
        self,
        img_resolution: int = 32,
        img_channels: int = 3,
        label_dim: int = 10,
        augment_dim: int = 9,
        model_channels: int = 128,
        channel_mult: tuple[int, ...] | list[int] = (2, 2, 2),
        channel_mult_emb: int = 4,
        num_blocks: int = 4,
        attn_resolutions: tuple[int, ...] | list[int] = (16,),
        dropout: float = 0.13,
        resample_filter: tuple[int, ...] | list[int] = (1, 1),
        beta_d: float = 19.9,
        beta_min: float = 0.1,
        M: int = 1000,
    ) -> None:
        super().__init__()
        self.config = {
            "img_resolution": img_resolution,
            "img_channels": img_channels,
            "label_dim": label_dim,
            "augment_dim": augment_dim,
            "model_channels": model_channels,
            "channel_mult": list(channel_mult),
            "channel_mult_emb": channel_mult_emb,
            "num_blocks": num_blocks,
            "attn_resolutions": list(attn_resolutions),
            "resample_filter": list(resample_filter),
            "beta_d": beta_d,
            "beta_min": beta_min,
            "M": M,
        }
        self.label_dim, self.M = label_dim, M
        self.num_classes, self.class_conditional = max(label_dim, 1), label_dim > 0
        tau = torch.arange(1, M + 1, dtype=torch.float64) / M
        abar = torch.exp(-(0.5 * beta_d * tau**2 + beta_min * tau))
        betas = 1 - abar / torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        self.register_buffer("taus", tau.float(), persistent=False)
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alphas_cumprod", abar.float(), persistent=False)
        self.model = SongUNet(
            img_resolution,
            img_channels,
            label_dim,
            augment_dim,
            model_channels,
            list(channel_mult),
            channel_mult_emb,
            num_blocks,
            {int(r) for r in attn_resolutions},
            dropout,
            list(resample_filter),
        )

    def labels(self, y: Tensor | None, b: int, device: torch.device) -> Tensor | None:
        """One-hot class labels; ``None`` or label ``num_classes`` give the zero vector (VPPrecond's no-label input)."""
        if not self.label_dim:
            return None
        if y is None:
            return torch.zeros(b, self.label_dim, device=device)
        return F.one_hot(y.long(), self.label_dim + 1)[:, : self.label_dim].float()

    def forward(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        noise = (self.M - 1) * self.taus[t.long()]
        out: Tensor = self.model(x_t, noise, self.labels(y, x_t.shape[0], x_t.device))
        return out
