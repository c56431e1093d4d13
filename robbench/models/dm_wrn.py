"""DeepMind's WideResNet (RobustBench's ``DMWideResNet``): the WRN-70-16 classifiers of the RobustBench zoo.

Gowal et al., "Uncovering the Limits of Adversarial Training against Norm-Bounded Adversarial Examples"
(arXiv 2010.03593) and Rebuffi et al., "Fixing Data Augmentation to Improve Adversarial Robustness" (arXiv
2103.01946) published WRN-70-16 models with Swish activations, "SAME" padding on strided convolutions and the
CIFAR-10 normalisation inside; RobustBench distributes them (``Gowal2020Uncovering_70_16_extra``,
``Rebuffi2021Fixing_70_16_cutmix_extra``, ...) as ``models/cifar10/Linf/<name>.pt`` state dicts, and DiffPure
evaluates CIFAR-10 with such a WRN-70-16. robbench's own implementation of that network, with the official
parameter names (``init_conv``, ``layer.G.block.B.batchnorm_0``, ..., ``logits``), so those files load with
``format: robustbench``; the normalisation constants are not in the files (non-persistent, as in the official
code).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)


def _act(name: str) -> nn.Module:
    if name not in ("swish", "relu"):
        raise ValueError(f"activation must be swish or relu, got {name!r}")
    return nn.SiLU() if name == "swish" else nn.ReLU()


class Block(nn.Module):
    """Pre-activation WRN block; a strided 3x3 conv pads (0, 1, 0, 1) as TensorFlow's SAME."""

    def __init__(self, cin: int, cout: int, stride: int, act: str) -> None:
        super().__init__()
        self.batchnorm_0, self.relu_0 = nn.BatchNorm2d(cin), _act(act)
        self.conv_0 = nn.Conv2d(cin, cout, 3, stride=stride, padding=0, bias=False)
        self.batchnorm_1, self.relu_1 = nn.BatchNorm2d(cout), _act(act)
        self.conv_1 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if cin != cout else None
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu_0(self.batchnorm_0(x))
        if self.shortcut is not None:
            x = pre
        v = F.pad(pre, (1, 1, 1, 1) if self.stride == 1 else (0, 1, 0, 1))
        out = self.conv_1(self.relu_1(self.batchnorm_1(self.conv_0(v))))
        skip: Tensor = self.shortcut(x) if self.shortcut is not None else x
        res: Tensor = skip + out
        return res


class BlockGroup(nn.Module):
    def __init__(self, n: int, cin: int, cout: int, stride: int, act: str) -> None:
        super().__init__()
        self.block = nn.Sequential(
            *(Block(cin if i == 0 else cout, cout, stride if i == 0 else 1, act) for i in range(n))
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.block(x)
        return out


class DMWideResNet(nn.Module):
    """WideResNet-``depth``-``width`` in DeepMind's layout: pixels in [0, 1], normalisation inside.

    Config: ``depth`` (70), ``width`` (16), ``num_classes`` (10), ``activation`` (``swish`` | ``relu``),
    ``mean`` / ``std`` (CIFAR-10's), ``in_channels`` (3). Defaults: the WRN-70-16 of Gowal et al. 2020 and
    Rebuffi et al. 2021 in RobustBench; built from RobustBench's own ``DMWideResNet(depth=70, width=16,
    activation_fn=Swish)`` it has 266,796,506 parameters (docs/checkpoints.md).
    """

    mean: Tensor
    std: Tensor
    example_config: ClassVar[dict[str, Any]] = {"depth": 10, "width": 1, "in_channels": 1, "mean": [0.5], "std": [0.5]}
    example_input_shape: ClassVar[tuple[int, int, int]] = (1, 8, 8)

    def __init__(
        self,
        depth: int = 70,
        width: int = 16,
        num_classes: int = 10,
        activation: str = "swish",
        mean: tuple[float, ...] | list[float] = CIFAR10_MEAN,
        std: tuple[float, ...] | list[float] = CIFAR10_STD,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"depth must be 6n + 4, got {depth}")
        n, chans = (depth - 4) // 6, [16, 16 * width, 32 * width, 64 * width]
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(-1, 1, 1), persistent=False)
        self.init_conv = nn.Conv2d(in_channels, chans[0], 3, padding=1, bias=False)
        self.layer = nn.Sequential(
            BlockGroup(n, chans[0], chans[1], 1, activation),
            BlockGroup(n, chans[1], chans[2], 2, activation),
            BlockGroup(n, chans[2], chans[3], 2, activation),
        )
        self.batchnorm, self.relu = nn.BatchNorm2d(chans[3]), _act(activation)
        self.logits = nn.Linear(chans[3], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layer(self.init_conv((x - self.mean) / self.std))
        out = self.relu(self.batchnorm(out))
        logits: Tensor = self.logits(F.adaptive_avg_pool2d(out, 1).flatten(1))
        return logits
