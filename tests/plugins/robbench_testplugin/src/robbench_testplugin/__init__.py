"""A third-party robbench plugin used by the tests: defenses, attacks, a model and a data set, some
deliberately broken.

``test_lenet`` (a model with a fixed 28x28 input, declared in ``example_input_shape``) and
``test_stripes`` (a synthetic data set) show the model and data-set plugin interfaces; README's
plugin section points here.

``test_blur`` and ``test_noise`` are well-behaved. ``test_gauss`` is a stochastic purifier (for the
reproducibility tests). ``test_nan`` returns NaN/inf and ``test_cheat`` leaves its threat ball or
[0, 1]: they exist so the tests can prove that the runner flags them (tests/test_numerical_faults.py).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from robbench.attacks.base import Attack
from robbench.core.components import Params
from robbench.data.base import Dataset
from robbench.defenses.base import Defense


class BlurParams(Params):
    kernel: int = Field(default=3, ge=1, le=9)


class Blur(Defense):
    """Box blur before the classifier (test plugin)."""

    Params = BlurParams

    def purify(self, x, *, rng=None):  # type: ignore[no-untyped-def]
        k = self.params.kernel  # type: ignore[attr-defined]
        return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1).clamp(0, 1)


class UniformNoise(Attack):
    """Random uniform noise at the budget's corners (test plugin, Linf only)."""

    norms = frozenset({"linf"})

    def run(self, target, x, y, threat, *, rng):  # type: ignore[no-untyped-def]
        return (x + threat.eps * torch.sign(rng.rand(*x.shape[1:]) - 0.5)).clamp(0, 1)


class GaussParams(Params):
    sigma: float = Field(default=0.1, gt=0, le=1)


class Gauss(Defense):
    """Gaussian noise before the classifier, drawn from the sample's stream (test plugin, stochastic)."""

    Params = GaussParams
    stochastic = True

    def purify(self, x, *, rng=None):  # type: ignore[no-untyped-def]
        assert rng is not None, "a stochastic defense needs its generator"
        return (x + self.params.sigma * rng.randn_like(x)).clamp(0, 1)  # type: ignore[attr-defined]


class NaNParams(Params):
    #: where the non-finite value appears: in the purified image (so gradients are NaN too) or the logits
    where: Literal["purify", "logits"] = "purify"
    value: Literal["nan", "inf"] = "nan"
    #: only images whose mean pixel is at least this are affected (0: all)
    min_mean: float = Field(default=0.0, ge=0, le=1)


class NaNDefense(Defense):
    """Returns NaN/inf for some inputs (test plugin: a numerically broken defense)."""

    Params = NaNParams

    def _mask(self, x):  # type: ignore[no-untyped-def]
        return (x.flatten(1).mean(1) >= self.params.min_mean).view(-1, *[1] * (x.ndim - 1))  # type: ignore[attr-defined]

    def _bad(self, t):  # type: ignore[no-untyped-def]
        return torch.full_like(t, float(self.params.value))  # type: ignore[attr-defined]

    def purify(self, x, *, rng=None):  # type: ignore[no-untyped-def]
        if self.params.where != "purify":  # type: ignore[attr-defined]
            return x
        return torch.where(self._mask(x), x + self._bad(x), x)

    def classify(self, x):  # type: ignore[no-untyped-def]
        logits = super().classify(x)
        if self.params.where != "logits":  # type: ignore[attr-defined]
            return logits
        return torch.where(self._mask(x).view(-1, 1), self._bad(logits), logits)


class CheatParams(Params):
    #: ball: twice the budget away; box: inside the ball but below 0; nan: a NaN image
    mode: Literal["ball", "box", "nan"] = "ball"


class Cheat(Attack):
    """Returns images outside its threat ball, outside [0,1], or NaN (test plugin: a buggy attack; Linf)."""

    Params = CheatParams
    norms = frozenset({"linf"})

    def run(self, target, x, y, threat, *, rng):  # type: ignore[no-untyped-def]
        mode = self.params.mode  # type: ignore[attr-defined]
        if mode == "ball":
            return (x + 2 * threat.eps).clamp(0, 1)
        if mode == "box":
            return x - threat.eps / 2
        return x + float("nan")


class LeNet(torch.nn.Module):
    """LeNet-5 for 28x28 grey images (test plugin model: a fixed input size, declared)."""

    example_config: dict[str, object] = {"num_classes": 10}
    #: the only input size it accepts
    example_input_shape = (1, 28, 28)

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 6, 5, padding=2),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(6, 16, 5),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        )
        self.head = torch.nn.Linear(16 * 5 * 5, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x - 0.5).flatten(1))


class Stripes(Dataset):
    """Synthetic 8x8 stripes, 2 classes: horizontal or vertical (test plugin data set, no files)."""

    name = "test_stripes"
    shape = (1, 8, 8)
    num_classes = 2
    split_sizes = {"train": 64, "test": 32}

    def check_available(self, split: str) -> None:
        return None

    def _load(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        n = self.split_sizes[split]
        y = torch.arange(n) % 2
        phase = torch.randint(0, 2, (n,), generator=g)
        idx = torch.arange(8)
        rows = ((idx.view(1, 8, 1) + phase.view(n, 1, 1)) % 2).expand(n, 8, 8).float()
        x = torch.where(y.view(n, 1, 1) == 0, rows, rows.transpose(1, 2))
        noise = 0.1 * torch.rand(n, 8, 8, generator=g)
        return (0.8 * x + noise).clamp(0, 1).unsqueeze(1), y.long()
