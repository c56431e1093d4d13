"""scikit-learn's bundled handwritten digits (8x8, 10 classes), with a fixed stratified split."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from robbench.data.base import Dataset


class Digits(Dataset):
    """scikit-learn digits: 1797 8x8 grey images, 10 classes; fixed stratified 80/20 split.

    The split takes, within each class in index order, every fifth image for ``test`` (no RNG, so
    it never changes). Pixels (0..16) are divided by 16.
    """

    name = "digits"
    shape = (1, 8, 8)
    num_classes = 10
    split_sizes: ClassVar[dict[str, int]] = {"train": 1433, "test": 364}

    def check_available(self, split: str) -> None:
        return None  # ships inside scikit-learn

    def _load(self, split: str) -> tuple[Tensor, Tensor]:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = np.asarray(bunch.images, dtype=np.float32) / 16.0
        labels = np.asarray(bunch.target, dtype=np.int64)
        test_mask = np.zeros(len(labels), dtype=bool)
        for c in range(10):
            idx = np.flatnonzero(labels == c)
            test_mask[idx[::5]] = True
        mask = test_mask if split == "test" else ~test_mask
        x = torch.from_numpy(images[mask]).unsqueeze(1).contiguous()
        y = torch.from_numpy(labels[mask]).contiguous()
        return x, y
