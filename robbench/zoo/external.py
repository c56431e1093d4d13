"""Readers of the community's checkpoint layouts, from a local path (robbench downloads nothing).

``read(fmt, path, sha256, model) -> state_dict`` returns a state dict for ``model`` (the caller,
:func:`robbench.zoo.load_model`, checks names and shapes and loads it). Every file is loaded
weights-only (``torch.load(weights_only=True)``: tensors and plain containers, no code runs) after
its sha256 is verified when one is given.

Formats
    ``ncsnv2``: the official NCSNv2 ``checkpoint_*.pth`` (Song & Ermon 2020): a list
    ``[model state dict ('module.'-prefixed keys, DataParallel), optimizer state, epoch, step,
    EMA state]``, the EMA entry present when the run used EMA. The EMA weights (parameter names
    without prefix) replace the raw ones when present, as the official sampler does. Load it into
    architecture ``ncsnv2``.
    ``robustbench``: a plain state dict as RobustBench distributes its WideResNet-28-10 models,
    possibly wrapped as ``{"state_dict": ...}`` and/or with ``module.``-prefixed keys. Buffers the
    file lacks but the architecture has for its inside normalisation (``normalize.mean/std``) keep
    the architecture's configured values. Load it into ``wrn28_10`` (or any matching architecture).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robbench.errors import CheckpointError
from robbench.zoo.store import load_weights_only

FORMATS = ("ncsnv2", "robustbench")


def _strip(state: Mapping[str, Any], prefix: str = "module.") -> dict[str, Any]:
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()}


def _is_tensor_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def read_ncsnv2(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """State dict of an official NCSNv2 checkpoint object, EMA weights preferred."""
    if not isinstance(obj, (list, tuple)) or not obj or not _is_tensor_dict(obj[0]):
        kind = "plain state dict (a mapping)" if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{path} is not in the NCSNv2 checkpoint layout: expected a list whose element 0 is the model's "
            f"state dict, found a {kind}" + (f" of length {len(obj)}" if isinstance(obj, (list, tuple)) else ""),
            hint="give the official checkpoint_*.pth of NCSNv2, or use format: state_dict for a plain state dict",
        )
    state = _strip(obj[0])
    if len(obj) > 1 and _is_tensor_dict(obj[-1]):
        ema = _strip(obj[-1])
        unknown = sorted(set(ema) - set(state))
        if unknown:
            raise CheckpointError(
                f"{path}: its EMA entry names parameters the model state lacks: {unknown[:3]}",
                hint="the file mixes two models; re-export it from one NCSNv2 run",
            )
        state.update(ema)
    return state


def read_robustbench(obj: Any, path: Path, model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict of a RobustBench-style checkpoint, with the model's normalisation buffers filled in."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not _is_tensor_dict(obj):
        raise CheckpointError(
            f"{path} is not a state dict: expected a mapping of parameter names to tensors "
            f"(optionally under 'state_dict'), found a {type(obj).__name__}",
            hint="save the model with torch.save(model.state_dict(), path)",
        )
    state = _strip(obj)
    for k, v in model.state_dict().items():
        if k.startswith("normalize.") and k not in state:
            state[k] = v.detach().clone()
    return state


def read(fmt: str, path: str | Path, sha256: str | None, model: nn.Module) -> dict[str, torch.Tensor]:
    """Read the checkpoint at ``path`` in format ``fmt`` (see the module docstring) for ``model``."""
    path = Path(path).expanduser()
    if fmt not in FORMATS:
        raise CheckpointError(
            f"unknown checkpoint format {fmt!r} for {path}", hint=f"use one of state_dict, {', '.join(FORMATS)}"
        )
    obj = load_weights_only(path, sha256)
    if fmt == "ncsnv2":
        return read_ncsnv2(obj, path)
    return read_robustbench(obj, path, model)
