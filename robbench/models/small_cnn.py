"""A small CNN for 8x8 digits and 28x28 MNIST-like images."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from robbench.models.base import Normalize


class SmallCNN(nn.Module):
    """Small CNN classifier: two 3x3 conv blocks, adaptive pooling to 4x4, two linear layers.

    Config: ``in_channels`` (1), ``num_classes`` (10), ``width`` (32), ``mean``/``std`` for the
    normalisation inside the model (0.5 / 0.5). Takes pixels in [0, 1]. No dropout, no batch norm,
    so its output is a deterministic function of the input in train and eval mode alike.
    """

    example_config: ClassVar[dict[str, Any]] = {"in_channels": 1, "width": 4}

    #: an input (C, H, W) that ``example_config`` accepts (the registry contract tests use it)

    example_input_shape: ClassVar[tuple[int, int, int]] = (1, 8, 8)

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, width: int = 32, mean: float = 0.5, std: float = 0.5
    ) -> None:
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        self.normalize = Normalize((mean,) * in_channels, (std,) * in_channels)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * 16, 4 * width), nn.ReLU(), nn.Linear(4 * width, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.head(self.features(self.normalize(x)))
        return out

    def latent(self, x: Tensor) -> Tensor:
        """Penultimate-layer features (B, 4 * width): the input of the last linear layer."""
        out: Tensor = self.head[:-1](self.features(self.normalize(x)))
        return out
