"""The data-set interface and its loader."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor

from robbench.core.identity import sample_id
from robbench.errors import DataError


@dataclass
class DataSplit:
    """One split of a data set: images (N, C, H, W) float32 in [0, 1], labels (N,) int64, ids."""

    x: Tensor
    y: Tensor
    ids: list[str]

    def __post_init__(self) -> None:
        assert self.x.dtype == torch.float32 and self.x.ndim == 4, "images must be float32 NCHW"
        assert self.y.dtype == torch.int64 and self.y.shape[0] == self.x.shape[0]
        assert len(self.ids) == self.x.shape[0]

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: list[int]) -> DataSplit:
        idx = torch.as_tensor(index, dtype=torch.long)
        return DataSplit(self.x[idx].contiguous(), self.y[idx].contiguous(), [self.ids[i] for i in index])


class Dataset(ABC):
    """Base class of every data set plugin (entry-point group ``robbench.datasets``)."""

    name: ClassVar[str]
    shape: ClassVar[tuple[int, int, int]]
    num_classes: ClassVar[int]
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    split_sizes: ClassVar[dict[str, int]] = {}

    def __init__(self, data_dir: str | Path | None = None) -> None:
        env = os.environ.get("ROBBENCH_DATA_DIR")
        self.data_dir = Path(data_dir).expanduser() if data_dir else (Path(env) if env else None)

    @property
    def dim(self) -> int:
        c, h, w = self.shape
        return c * h * w

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise DataError(f"data set {self.name!r} has no split {split!r}", hint=f"use one of {list(self.splits)}")

    @abstractmethod
    def check_available(self, split: str) -> None:
        """Raise :class:`DataError` with the exact fix when the files are missing; read nothing big."""

    @abstractmethod
    def _load(self, split: str) -> tuple[Tensor, Tensor]:
        """Images (N, C, H, W) float32 in [0, 1] and labels (N,) int64."""

    def size(self, split: str) -> int:
        """Number of samples in ``split`` (without loading it where the size is known)."""
        if split in self.split_sizes:
            return self.split_sizes[split]
        return len(self.load(split))

    def load(self, split: str) -> DataSplit:
        self.check_split(split)
        self.check_available(split)
        x, y = self._load(split)
        ids = [sample_id(self.name, split, i) for i in range(x.shape[0])]
        return DataSplit(x.contiguous(), y.contiguous(), ids)


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """Instantiate the data set registered as ``name``."""
    from robbench.core.registry import datasets

    cls = datasets.get(name)
    ds: Dataset = cls(data_dir=data_dir)
    return ds
