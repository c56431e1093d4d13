"""Choosing the torch device of a run (``--device auto|cpu|cuda|mps``)."""

from __future__ import annotations

import torch

from robbench.errors import DeviceError


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu; a CUDA request without CUDA is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        dev = torch.device("meta")  # refused just below
    if dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(
            f"unknown device {device!r}",
            hint="use --device auto, cpu, cuda, cuda:N or mps",
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(
            f"device {device!r} requested but this machine has no MPS device (torch {torch.__version__})",
            hint="use --device cpu (or auto)",
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device {device!r} requested but this machine has no CUDA device (torch {torch.__version__})",
            hint="use --device cpu, or install a CUDA build of torch on a GPU machine",
        )
    return dev
