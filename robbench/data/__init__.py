"""Data sets: each yields float32 NCHW images in [0, 1], int64 labels and stable sample ids."""

from robbench.data.base import DataSplit, Dataset, load_dataset

__all__ = ["DataSplit", "Dataset", "load_dataset"]
