"""CIFAR-10 from the standard ``cifar-10-batches-py`` folder, read with a restricted unpickler."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from robbench.data.base import Dataset
from robbench.errors import DataError

_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST = ("test_batch",)

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("builtins", "dict"),
    ("builtins", "list"),
    # a batch re-pickled by Python 3: protocol 2 stores array bytes via _codecs.encode, protocol 5
    # via _frombuffer (both only build bytes/arrays; torch's weights-only unpickler allows them too)
    ("_codecs", "encode"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Allows only the plain containers and numpy arrays a CIFAR batch holds; no code runs."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch file: images (N, 3, 32, 32) uint8, labels (N,)."""
    try:
        with open(path, "rb") as fh:
            raw = _SafeUnpickler(io.BytesIO(fh.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataError(
            f"{path} is not a CIFAR-10 batch file: {exc}", hint="re-extract cifar-10-python.tar.gz"
        ) from None
    if not isinstance(raw, dict):
        raise DataError(f"{path} is not a CIFAR-10 batch file (no dict inside)")
    data = raw.get(b"data", raw.get("data"))
    labels = raw.get(b"labels", raw.get("labels"))
    if data is None or labels is None:
        raise DataError(f"{path} lacks the 'data' or 'labels' entry of a CIFAR-10 batch")
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: data has shape {data.shape}, expected (N, 3072)")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


class CIFAR10(Dataset):
    """CIFAR-10: 60k 32x32 colour images, 10 classes, from a local ``cifar-10-batches-py`` folder.

    Pass the folder (or its parent) as ``--data-dir`` / ``data.data_dir`` / ``$ROBBENCH_DATA_DIR``.
    Batch files are pickles; they are read with an unpickler that admits only numpy arrays and
    plain containers, so a tampered file cannot run code.
    """

    name = "cifar10"
    shape = (3, 32, 32)
    num_classes = 10
    split_sizes: ClassVar[dict[str, int]] = {"train": 50000, "test": 10000}

    def _folder(self) -> Path | None:
        if self.data_dir is None:
            return None
        for cand in (self.data_dir, self.data_dir / "cifar-10-batches-py"):
            if (cand / "test_batch").is_file():
                return cand
        return self.data_dir

    def check_available(self, split: str) -> None:
        folder = self._folder()
        hint = (
            "download cifar-10-python.tar.gz from the CIFAR-10 site, extract it, and pass "
            "--data-dir /path/to/cifar-10-batches-py (or set data.data_dir in the suite)"
        )
        if folder is None:
            raise DataError("data set 'cifar10' needs a local folder and none was given", hint=hint)
        for name in _TRAIN if split == "train" else _TEST:
            if not (folder / name).is_file():
                raise DataError(f"data set 'cifar10': {folder / name} not found", hint=hint)

    def _load(self, split: str) -> tuple[Tensor, Tensor]:
        folder = self._folder()
        assert folder is not None
        parts = [read_batch(folder / n) for n in (_TRAIN if split == "train" else _TEST)]
        x = np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0
        y = np.concatenate([p[1] for p in parts])
        return torch.from_numpy(x), torch.from_numpy(y)
