"""The NCSNv2 score network (Song & Ermon 2020), laid out so the official checkpoints load into it."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from robbench.models.generative import geometric_sigmas


class InstanceNormPlus(nn.Module):
    """InstanceNorm++: instance normalisation that re-injects the (standardised) channel means.

    Parameters ``alpha`` (mean re-injection), ``gamma`` (scale), ``beta`` (shift), one per channel.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(features))
        self.gamma = nn.Parameter(torch.ones(features))
        self.beta = nn.Parameter(torch.zeros(features))

    def forward(self, x: Tensor) -> Tensor:
        mu = x.mean(dim=(2, 3))
        mu_std = (mu - mu.mean(dim=1, keepdim=True)) / torch.sqrt(mu.var(dim=1, keepdim=True) + 1e-5)
        h = F.instance_norm(x, eps=1e-5) + mu_std[:, :, None, None] * self.alpha[None, :, None, None]
        return self.gamma[None, :, None, None] * h + self.beta[None, :, None, None]


class _ConvPool(nn.Module):
    """A convolution followed by 2x2 mean pooling (attribute ``conv``)."""

    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, padding=k // 2)

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(self.conv(x), 2)


def _conv3(c_in: int, c_out: int, dilation: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation, bias=bias)


class _ResBlock(nn.Module):
    """Pre-activation residual block: norm, ELU, conv, norm, ELU, conv; optional 2x downsampling or dilation."""

    def __init__(self, c_in: int, c_out: int, down: bool = False, dilation: int | None = None) -> None:
        super().__init__()
        self.normalize1 = InstanceNormPlus(c_in)
        mid = c_in if down else c_out
        self.normalize2 = InstanceNormPlus(mid)
        self.shortcut: nn.Module | None = None
        if dilation is not None:
            self.conv1 = _conv3(c_in, mid, dilation)
            self.conv2: nn.Module = _conv3(mid, c_out, dilation)
            if down or c_in != c_out:
                self.shortcut = _conv3(c_in, c_out, dilation)
        elif down:
            self.conv1 = _conv3(c_in, c_in)
            self.conv2 = _ConvPool(c_in, c_out, 3)
            self.shortcut = _ConvPool(c_in, c_out, 1)
        else:
            self.conv1 = _conv3(c_in, c_out)
            self.conv2 = _conv3(c_out, c_out)
            if c_in != c_out:
                self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        h: Tensor = self.conv1(F.elu(self.normalize1(x)))
        h = self.conv2(F.elu(self.normalize2(h)))
        skip = x if self.shortcut is None else self.shortcut(x)
        return skip + h


class _RCU(nn.Module):
    """Residual conv units: ``blocks`` x (``stages`` x (ELU, bias-free 3x3 conv)) with skips.

    Convolutions are attributes named ``{block}_{stage}_conv`` (1-based), as in the official code.
    """

    def __init__(self, features: int, blocks: int, stages: int = 2) -> None:
        super().__init__()
        self.blocks, self.stages = blocks, stages
        for i in range(1, blocks + 1):
            for j in range(1, stages + 1):
                self.add_module(f"{i}_{j}_conv", _conv3(features, features, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        for i in range(1, self.blocks + 1):
            res = x
            for j in range(1, self.stages + 1):
                x = getattr(self, f"{i}_{j}_conv")(F.elu(x))
            x = x + res
        return x


class _CRP(nn.Module):
    """Chained residual pooling: two stages of 5x5 max pooling and a bias-free 3x3 conv."""

    def __init__(self, features: int, stages: int = 2) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_conv3(features, features, bias=False) for _ in range(stages))

    def forward(self, x: Tensor) -> Tensor:
        x = F.elu(x)
        path = x
        for conv in self.convs:
            path = conv(F.max_pool2d(path, 5, stride=1, padding=2))
            x = x + path
        return x


class _MSF(nn.Module):
    """Multi-resolution fusion: a 3x3 conv per input, bilinearly resized and summed."""

    def __init__(self, in_planes: list[int], features: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_conv3(c, features) for c in in_planes)

    def forward(self, xs: list[Tensor], shape: torch.Size) -> Tensor:
        out = None
        for conv, x in zip(self.convs, xs):
            h = F.interpolate(conv(x), size=shape, mode="bilinear", align_corners=True)
            out = h if out is None else out + h
        assert out is not None
        return out


class _Refine(nn.Module):
    """RefineNet block: adapt each input (RCU), fuse (MSF), chained pooling (CRP), output RCU."""

    def __init__(self, in_planes: list[int], features: int, start: bool = False, end: bool = False) -> None:
        super().__init__()
        self.adapt_convs = nn.ModuleList(_RCU(c, 2) for c in in_planes)
        self.msf = None if start else _MSF(in_planes, features)
        self.crp = _CRP(features)
        self.output_convs = _RCU(features, 3 if end else 1)

    def forward(self, xs: list[Tensor], shape: torch.Size) -> Tensor:
        hs = [a(x) for a, x in zip(self.adapt_convs, xs)]
        h = self.msf(hs, shape) if self.msf is not None and len(hs) > 1 else hs[0]
        out: Tensor = self.output_convs(self.crp(h))
        return out


class NCSNv2(nn.Module):
    """NCSNv2 RefineNet score network (Song & Ermon 2020), parameter names of the official CIFAR-10 model.

    Implements :class:`robbench.models.generative.ScoreModel`: ``forward(x, sigma)`` with ``x``
    in [0, 1] (mapped to ``2x - 1`` inside, the official ``rescaled: false`` convention) and
    ``sigma`` (B,), returning ``f(x) / sigma``; the network itself is unconditional. Buffer
    ``sigmas``: the geometric ladder (official CIFAR-10: 50 -> 0.01, 232 levels).

    Config: ``in_channels`` (3), ``ngf`` (128), ``sigma_max`` (50), ``sigma_min`` (0.01),
    ``num_scales`` (232). With the defaults, ``state_dict()`` has exactly the names and shapes of
    the official ``NCSNv2`` CIFAR-10 model (InstanceNorm++, ELU, no spectral norm); load its
    ``checkpoint_*.pth`` with ``format: ncsnv2`` (:mod:`robbench.zoo.external`).
    """

    sigmas: Tensor

    example_config: ClassVar[dict[str, Any]] = {"in_channels": 1, "ngf": 4, "num_scales": 5, "sigma_max": 1.0}

    #: an input (C, H, W) that ``example_config`` accepts (the registry contract tests use it)

    example_input_shape: ClassVar[tuple[int, int, int]] = (1, 8, 8)

    def __init__(
        self,
        in_channels: int = 3,
        ngf: int = 128,
        sigma_max: float = 50.0,
        sigma_min: float = 0.01,
        num_scales: int = 232,
    ) -> None:
        super().__init__()
        if not (sigma_max > sigma_min > 0) or num_scales < 1:
            raise TypeError(
                f"need sigma_max > sigma_min > 0 and num_scales >= 1, got {sigma_max}, {sigma_min}, {num_scales}"
            )
        self.in_channels = in_channels
        self.register_buffer("sigmas", geometric_sigmas(sigma_max, sigma_min, num_scales).float())
        g2 = 2 * ngf
        self.begin_conv = _conv3(in_channels, ngf)
        self.normalizer = InstanceNormPlus(ngf)
        self.end_conv = _conv3(ngf, in_channels)
        self.res1 = nn.ModuleList([_ResBlock(ngf, ngf), _ResBlock(ngf, ngf)])
        self.res2 = nn.ModuleList([_ResBlock(ngf, g2, down=True), _ResBlock(g2, g2)])
        self.res3 = nn.ModuleList([_ResBlock(g2, g2, down=True, dilation=2), _ResBlock(g2, g2, dilation=2)])
        self.res4 = nn.ModuleList([_ResBlock(g2, g2, down=True, dilation=4), _ResBlock(g2, g2, dilation=4)])
        self.refine1 = _Refine([g2], g2, start=True)
        self.refine2 = _Refine([g2, g2], g2)
        self.refine3 = _Refine([g2, g2], ngf)
        self.refine4 = _Refine([ngf, ngf], ngf, end=True)

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        h = self.begin_conv(2 * x - 1)
        feats = []
        for stage in (self.res1, self.res2, self.res3, self.res4):
            for block in stage:
                h = block(h)
            feats.append(h)
        l1, l2, l3, l4 = feats
        r = self.refine1([l4], l4.shape[2:])
        r = self.refine2([l3, r], l3.shape[2:])
        r = self.refine3([l2, r], l2.shape[2:])
        r = self.refine4([l1, r], l1.shape[2:])
        out: Tensor = self.end_conv(F.elu(self.normalizer(r)))
        return out / sigma.view(-1, 1, 1, 1)
