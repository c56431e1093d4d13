"""Building architectures by registered name, and deterministic weight initialisation."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from robbench.errors import CheckpointError


def init_weights(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialise every parameter from ``generator`` (PyTorch's default schemes, no global RNG).

    Conv/linear weights: Kaiming-uniform with a = sqrt(5); their biases: uniform(+-1/sqrt(fan_in));
    normalisation layers: weight 1, bias 0; embeddings: N(0, 1); a module of an architecture's own with an
    ``init_weights_from(generator)`` method initialises itself.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                fan_in = (
                    m.weight[0].numel()
                    if not isinstance(m, nn.ConvTranspose2d)
                    else m.weight.shape[0] * m.weight[0, 0].numel()
                )
                bound = 1 / math.sqrt(max(fan_in, 1))
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)):
            if getattr(m, "weight", None) is not None:
                nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, generator=generator)
        elif callable(hook := getattr(m, "init_weights_from", None)):
            hook(generator)
    return module


def build_model(arch: str, **config: Any) -> nn.Module:
    """Instantiate the architecture registered as ``arch`` with its configuration."""
    from robbench.core.registry import models

    cls = models.get(arch)
    try:
        model: nn.Module = cls(**config)
    except TypeError as exc:
        raise CheckpointError(f"architecture {arch!r} rejects its config {config}: {exc}") from None
    return model


class Normalize(nn.Module):
    """Per-channel (x - mean) / std inside the model, so models take [0, 1] pixels."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
