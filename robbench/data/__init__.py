"""Data sets: each yields float32 NCHW images in [0, 1], int64 labels and stable sample ids.

This package imports nothing heavy, so ``robbench ls`` can read docstrings without torch.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("DataSplit", "Dataset", "load_dataset"):
        from robbench.data import base

        return getattr(base, name)
    raise AttributeError(name)
