"""Data sets: each yields float32 NCHW images in [0, 1], int64 labels and stable sample ids.

This package imports nothing heavy, so ``robbench ls`` can read docstrings without torch.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the lazy names below, typed for mypy (nothing is imported at run time)
    from robbench.data.base import Dataset as Dataset
    from robbench.data.base import DataSplit as DataSplit
    from robbench.data.base import load_dataset as load_dataset


def __getattr__(name: str) -> Any:
    if name in ("DataSplit", "Dataset", "load_dataset"):
        from robbench.data import base

        return getattr(base, name)
    raise AttributeError(name)
