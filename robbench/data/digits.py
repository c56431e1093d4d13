"""scikit-learn's bundled handwritten digits (8x8, 10 classes), with a fixed stratified split."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from robbench.data.base import Dataset


def bundled_csv() -> Path | None:
    """scikit-learn's ``digits.csv.gz``, found without importing scikit-learn (None if absent)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    return path if path.is_file() else None


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as (images uint8 N x 8 x 8 in 0..16, labels int64), in scikit-learn's order.

    Reads the bundled CSV directly: importing ``sklearn.datasets`` pulls in scipy.stats and costs
    about 1.3 s, paid by every worker process of a run. Falls back to ``load_digits`` where the file
    is not where this version of scikit-learn keeps it.
    """
    path = bundled_csv()
    if path is None:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return np.asarray(bunch.images, dtype=np.uint8), np.asarray(bunch.target, dtype=np.int64)
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.int64)
    return data[:, :-1].reshape(-1, 8, 8).astype(np.uint8), data[:, -1].astype(np.int64)


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
        images, labels = read_digits()
        images = images.astype(np.float32) / 16.0
        test_mask = np.zeros(len(labels), dtype=bool)
        for c in range(10):
            idx = np.flatnonzero(labels == c)
            test_mask[idx[::5]] = True
        mask = test_mask if split == "test" else ~test_mask
        x = torch.from_numpy(images[mask]).unsqueeze(1).contiguous()
        y = torch.from_numpy(labels[mask]).contiguous()
        return x, y
