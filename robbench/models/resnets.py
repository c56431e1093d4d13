"""CIFAR-style residual classifiers: ResNet-20 (He et al. 2016) and WideResNet-28-10 (Zagoruyko &
Komodakis 2016), both taking pixels in [0, 1] and normalising inside."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn
from torch.nn import functional as F

from robbench.models.base import Normalize

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)


def _per_channel(v: float | tuple[float, ...] | list[float], c: int) -> tuple[float, ...]:
    if isinstance(v, (int, float)):
        return (float(v),) * c
    if len(v) != c:
        raise TypeError(f"mean/std need {c} values, got {len(v)}")
    return tuple(float(a) for a in v)


class _Basic(nn.Module):
    """Post-activation basic block: conv-BN-ReLU-conv-BN plus a 1x1 conv-BN projection when shapes change."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + self.shortcut(x))


class ResNet20(nn.Module):
    """CIFAR ResNet (He et al. 2016, section 4.2): 6n+2 layers, widths w, 2w, 4w; ResNet-20 by default.

    Config: ``depth`` (20; any 6n+2), ``width`` (16), ``in_channels`` (3), ``num_classes`` (10),
    ``mean``/``std`` (CIFAR-10 statistics; a number or one per channel) for the normalisation
    inside the model. Choice: projection shortcuts (1x1 conv + BN, "option B") where shapes change.
    """

    example_config: ClassVar[dict[str, Any]] = {"depth": 8, "width": 4, "in_channels": 1, "mean": 0.5, "std": 0.5}

    #: an input (C, H, W) that ``example_config`` accepts (the registry contract tests use it)

    example_input_shape: ClassVar[tuple[int, int, int]] = (1, 8, 8)

    def __init__(
        self,
        depth: int = 20,
        width: int = 16,
        in_channels: int = 3,
        num_classes: int = 10,
        mean: float | tuple[float, ...] = CIFAR10_MEAN,
        std: float | tuple[float, ...] = CIFAR10_STD,
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise TypeError(f"ResNet depth must be 6n+2 with n >= 1, got {depth}")
        n = (depth - 2) // 6
        self.in_channels, self.num_classes = in_channels, num_classes
        self.normalize = Normalize(_per_channel(mean, in_channels), _per_channel(std, in_channels))
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers = []
        c = width
        for i, w in enumerate((width, 2 * width, 4 * width)):
            blocks = []
            for j in range(n):
                blocks.append(_Basic(c, w, 2 if (i > 0 and j == 0) else 1))
                c = w
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.conv1(self.normalize(x))))
        h = self.layer3(self.layer2(self.layer1(h)))
        out: Tensor = self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))
        return out


class _WideBasic(nn.Module):
    """Pre-activation wide block (BN-ReLU-conv twice); a 1x1 ``convShortcut`` when shapes change."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.equal = c_in == c_out
        self.convShortcut = None if self.equal else nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        a = F.relu(self.bn1(x))
        h: Tensor = self.conv2(F.relu(self.bn2(self.conv1(a))))
        skip = x if self.convShortcut is None else self.convShortcut(a)
        return skip + h


class _Group(nn.Module):
    def __init__(self, n: int, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            *[_WideBasic(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1) for i in range(n)]
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.layer(x)
        return out


class WideResNet(nn.Module):
    """WideResNet-28-10 (Zagoruyko & Komodakis 2016), parameter names of RobustBench's WRN checkpoints.

    Config: ``depth`` (28; any 6n+4 with n >= 1 blocks per group), ``widen_factor`` (10),
    ``in_channels`` (3), ``num_classes`` (10), ``mean``/``std`` (0 / 1: RobustBench's standard
    WRN-28-10 takes raw [0, 1] pixels; set CIFAR-10 statistics for models trained with them).
    Pre-activation blocks, no dropout. ``state_dict()`` names (``conv1``, ``block{1,2,3}.layer.i.
    {bn1,conv1,bn2,conv2,convShortcut}``, ``bn1``, ``fc``) match RobustBench's, plus the
    ``normalize.mean/std`` buffers that :mod:`robbench.zoo.external` fills in when a file lacks them.
    """

    example_config: ClassVar[dict[str, Any]] = {"depth": 10, "widen_factor": 1, "in_channels": 1}

    #: an input (C, H, W) that ``example_config`` accepts (the registry contract tests use it)

    example_input_shape: ClassVar[tuple[int, int, int]] = (1, 8, 8)

    def __init__(
        self,
        depth: int = 28,
        widen_factor: int = 10,
        in_channels: int = 3,
        num_classes: int = 10,
        mean: float | tuple[float, ...] = 0.0,
        std: float | tuple[float, ...] = 1.0,
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise TypeError(f"WideResNet depth must be 6n+4 with n >= 1, got {depth}")
        n = (depth - 4) // 6
        w = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.in_channels, self.num_classes = in_channels, num_classes
        self.normalize = Normalize(_per_channel(mean, in_channels), _per_channel(std, in_channels))
        self.conv1 = nn.Conv2d(in_channels, w[0], 3, padding=1, bias=False)
        self.block1 = _Group(n, w[0], w[1], 1)
        self.block2 = _Group(n, w[1], w[2], 2)
        self.block3 = _Group(n, w[2], w[3], 2)
        self.bn1 = nn.BatchNorm2d(w[3])
        self.fc = nn.Linear(w[3], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.block3(self.block2(self.block1(self.conv1(self.normalize(x)))))
        h = F.relu(self.bn1(h))
        out: Tensor = self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))
        return out
