"""The runner: plan cells, skip finished rows, batch, attack, check containment, judge, write shards.

A *cell* is one (defense, attack, threat); the clean attack is threat-free. A *unit* is a cell
and a list of samples; units are independent and carry their own seeds (derived from the suite
seed, the cell and each sample id), so any split of the work gives the same rows. The runner,
never the attack, judges success with the real defense, and asserts on every sample that the
adversarial image lies in the threat ball and in [0, 1].
"""

from __future__ import annotations

import torch

from robbench.errors import DeviceError


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu; a CUDA request without CUDA is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device {device!r} requested but this machine has no CUDA device (torch {torch.__version__})",
            hint="use --device cpu, or install a CUDA build of torch on a GPU machine",
        )
    return dev
