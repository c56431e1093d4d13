"""MNIST-format (IDX) data sets: Fashion-MNIST and MNIST, read from a local folder."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from robbench.data.base import Dataset
from robbench.errors import DataError

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a numpy array, checking its header."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        header = fh.read(4)
        if len(header) != 4 or header[0] != 0 or header[1] != 0:
            raise DataError(
                f"{path} is not an IDX file (bad magic number)", hint="re-download or reinstall the data set"
            )
        dtype_code, ndim = header[2], header[3]
        if dtype_code != 0x08:
            raise DataError(f"{path}: unsupported IDX element type 0x{dtype_code:02x}", hint="expected unsigned bytes")
        dims = struct.unpack(">" + "I" * ndim, fh.read(4 * ndim))
        data = fh.read()
    expected = int(np.prod(dims))
    if len(data) != expected:
        raise DataError(
            f"{path} is truncated: {len(data)} of {expected} bytes", hint="re-download or reinstall the data set"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


class _IDXDataset(Dataset):
    default_dirs: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str] = ""
    shape = (1, 28, 28)
    num_classes = 10
    split_sizes: ClassVar[dict[str, int]] = {"train": 60000, "test": 10000}

    def _candidates(self) -> list[Path]:
        return [self.data_dir] if self.data_dir is not None else [Path(d) for d in self.default_dirs]

    def _find(self, stem: str) -> Path | None:
        for folder in self._candidates():
            for name in (stem, stem + ".gz"):
                if (folder / name).is_file():
                    return folder / name
        return None

    def check_available(self, split: str) -> None:
        for stem in _FILES[split]:
            if self._find(stem) is None:
                where = ", ".join(str(p) for p in self._candidates()) or "(no folder)"
                raise DataError(
                    f"data set {self.name!r}: file {stem}[.gz] not found in {where}",
                    hint=self.install_hint,
                )

    def _load(self, split: str) -> tuple[Tensor, Tensor]:
        img_path, lbl_path = (self._find(stem) for stem in _FILES[split])
        assert img_path is not None and lbl_path is not None
        images = read_idx(img_path)
        labels = read_idx(lbl_path)
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise DataError(f"{img_path} and {lbl_path} disagree in shape: {images.shape} vs {labels.shape}")
        x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        y = torch.from_numpy(labels.astype(np.int64))
        return x, y


class FashionMNIST(_IDXDataset):
    """Fashion-MNIST: 70k 28x28 grey clothing images, 10 classes (IDX files from a local folder).

    Looked for in ``--data-dir`` / ``data.data_dir`` / ``$ROBBENCH_DATA_DIR``, else Debian's
    ``/usr/share/datasets/fashion-mnist`` (package ``dataset-fashion-mnist``).
    """

    name = "fashion_mnist"
    default_dirs = ("/usr/share/datasets/fashion-mnist",)
    install_hint = "sudo apt-get install dataset-fashion-mnist  (or pass --data-dir FOLDER with the four IDX files)"


class MNIST(_IDXDataset):
    """MNIST: 70k 28x28 grey handwritten digits, 10 classes (IDX files from a local folder)."""

    name = "mnist"
    default_dirs = ("/usr/share/datasets/mnist",)
    install_hint = "put train/t10k-{images-idx3,labels-idx1}-ubyte[.gz] in a folder and pass --data-dir FOLDER"
