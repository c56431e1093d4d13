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
    ``score_sde``: score_sde_pytorch's ``checkpoint_*.pth`` (Song et al. 2021; DiffPure's CIFAR-10 model is
    ``vp/cifar10_ddpmpp_deep_continuous/checkpoint_8.pth``): a dict with ``model`` (the state dict,
    ``module.``-prefixed), ``ema`` (``shadow_params``: the EMA weights as a list in the order of the
    model's parameters), ``optimizer`` and ``step``. The EMA weights replace the raw ones, matched by
    position to the architecture's parameters (shapes checked one by one), as the official sampler's
    ``ema.copy_to`` does. Load it into ``ncsnpp``.
    ``robustbench``: a plain state dict as RobustBench distributes its WideResNet-28-10 models,
    possibly wrapped as ``{"state_dict": ...}`` and/or with ``module.``- or ``model.``-prefixed keys. Buffers the
    file lacks but the architecture has for its inside normalisation (``normalize.mean/std``) keep
    the architecture's configured values. Load it into ``wrn28_10`` (or any matching architecture).
    ``edm``: an EDM network pickle (Karras et al. 2022; RDC's CIFAR-10 model is
    ``edm-cifar10-32x32-cond-vp.pkl``), a pickle with code (``torch_utils.persistence``) that is read as data by
    :mod:`robbench.zoo.edm_pickle` (nothing in it runs; any other global refuses the file). The ``ema`` network's
    weights are used; its recorded constructor arguments are checked against the architecture's config. Load it
    into ``edm_vp``.
    ``diffusers``: a ``diffusers`` UNet2DModel folder (``checkpoint:`` is the folder): ``config.json``,
    ``diffusion_pytorch_model.safetensors`` (or ``.bin``, read weights-only) and the DDPMScheduler's
    ``scheduler_config.json``, at the top level as in ``google/ddpm-cifar10-32`` or in ``unet/`` and
    ``scheduler/`` subfolders as in a pipeline folder. The UNet and schedule configs come from the
    folder (:func:`diffusers_config`); ``sha256`` is that of the weights file. Load it into
    ``diffusers_unet``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robbench.errors import CheckpointError
from robbench.zoo.store import load_weights_only

FORMATS = ("ncsnv2", "robustbench", "diffusers", "score_sde", "edm")
#: where the public files of each format come from (a missing checkpoint's message names it)
SOURCES = {
    "ncsnv2": "the official NCSNv2 release (github.com/ermongroup/ncsnv2, a checkpoint_*.pth of its CIFAR-10 run)",
    "robustbench": "the RobustBench model zoo (a state dict of the model, e.g. a WideResNet-28-10 .pt)",
    "diffusers": "a Hugging Face model folder in the diffusers layout (e.g. google/ddpm-cifar10-32)",
    "score_sde": "the score_sde_pytorch release (github.com/yang-song/score_sde_pytorch; DiffPure's CIFAR-10 model "
    "is vp/cifar10_ddpmpp_deep_continuous/checkpoint_8.pth)",
    "edm": "the EDM release (github.com/NVlabs/edm; RDC's CIFAR-10 model is "
    "nvlabs-fi-cdn.nvidia.com/edm/pretrained/edm-cifar10-32x32-cond-vp.pkl)",
}
#: weight files of a diffusers model folder, in the order they are looked for
DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


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


def read_score_sde(obj: Any, path: Path, model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict of a score_sde checkpoint object, its EMA weights in place of the raw ones."""
    if not isinstance(obj, Mapping) or not _is_tensor_dict(obj.get("model")):
        found = sorted(map(str, obj))[:5] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{path} is not in the score_sde checkpoint layout: expected a dict with 'model' (a state dict) and "
            f"'ema', found {found}",
            hint="give score_sde_pytorch's checkpoint_*.pth (e.g. vp/cifar10_ddpmpp_deep_continuous/checkpoint_8.pth)",
        )
    state = _strip(obj["model"])
    ema = obj.get("ema")
    shadow = ema.get("shadow_params") if isinstance(ema, Mapping) else None
    if not isinstance(shadow, (list, tuple)) or not all(isinstance(t, torch.Tensor) for t in shadow):
        raise CheckpointError(
            f"{path} has no EMA weights ('ema' with a 'shadow_params' list of tensors)",
            hint="DiffPure purifies with the EMA weights: give the checkpoint as score_sde saved it",
        )
    names = [n for n, p in model.named_parameters()]
    if len(shadow) != len(names):
        raise CheckpointError(
            f"{path}: its EMA holds {len(shadow)} tensors, the architecture has {len(names)} parameters",
            hint="check the architecture's config (num_res_blocks 8 for the deep models, 4 otherwise)",
        )
    params = dict(model.named_parameters())
    for name, t in zip(names, shadow, strict=True):
        if tuple(t.shape) != tuple(params[name].shape):
            raise CheckpointError(
                f"{path}: EMA tensor for {name} has shape {tuple(t.shape)}, the architecture expects "
                f"{tuple(params[name].shape)}",
                hint="check the architecture's config against the checkpoint's (nf, ch_mult, num_res_blocks)",
            )
        state[name] = t
    return state


def read_edm_pickle(path: Path, sha256: str | None, model: nn.Module) -> dict[str, torch.Tensor]:
    """The EMA network's state dict of an EDM pickle (read as data), its config checked against ``model``'s."""
    from robbench.zoo.edm_pickle import read_edm
    from robbench.zoo.store import check_file

    check_file(path, sha256)
    state, kwargs = read_edm(path)
    config = getattr(model, "config", {})
    for key, ours in config.items():
        theirs = kwargs.get(key)
        if theirs is not None and (list(theirs) if isinstance(theirs, (list, tuple)) else theirs) != ours:
            raise CheckpointError(
                f"{path} was built with {key}={theirs!r}; the architecture's config has {key}={ours!r}",
                hint=f"set config {key}: {theirs!r} (the pickle records the network's constructor arguments)",
            )
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
    own = model.state_dict()
    if not any(k.startswith("model.") for k in own) and all(k.startswith("model.") for k in state):
        state = _strip(state, "model.")  # RobustBench strips this wrapper prefix too
    for k, v in own.items():
        if k.startswith("normalize.") and k not in state:
            state[k] = v.detach().clone()
    return state


def _diffusers_folder(path: Path, sub: str, name: str) -> Path:
    """``path/name`` or ``path/sub/name`` (pipeline layout); a clear error naming what is missing."""
    if not path.is_dir():
        raise CheckpointError(
            f"diffusers checkpoint {path} is not a folder",
            hint="give the model folder (config.json + diffusion_pytorch_model.safetensors + scheduler_config.json)",
        )
    for cand in (path / name, path / sub / name):
        if cand.is_file():
            return cand
    raise CheckpointError(
        f"diffusers folder {path} has no {name} (looked in {path} and {path / sub})",
        hint="copy the complete model folder as published (config.json, weights and scheduler_config.json)",
    )


def diffusers_config(path: str | Path) -> dict[str, Any]:
    """The ``diffusers_unet`` config of a diffusers folder: its UNet config and DDPM schedule."""
    import json

    path = Path(path).expanduser()
    out: dict[str, Any] = {}
    for sub, name in (("unet", "config.json"), ("scheduler", "scheduler_config.json")):
        f = _diffusers_folder(path, sub, name)
        try:
            cfg = json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{f} is not JSON: {exc}", hint="re-download the model folder") from None
        if not isinstance(cfg, dict):
            raise CheckpointError(f"{f} is not a JSON object", hint="re-download the model folder")
        if name == "config.json":
            if cfg.get("_class_name", "UNet2DModel") != "UNet2DModel":
                raise CheckpointError(
                    f"{f} describes a {cfg.get('_class_name')}, not a UNet2DModel",
                    hint="robbench's diffusers reader loads UNet2DModel folders (e.g. google/ddpm-cifar10-32)",
                )
            out["unet"] = cfg
        else:
            keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")
            out.update({k: cfg[k] for k in keys if k in cfg})
    return out


def read_diffusers(path: Path, sha256: str | None) -> dict[str, torch.Tensor]:
    """The UNet's weights of a diffusers folder, keys prefixed ``unet.`` (safetensors, or .bin weights-only)."""
    weights = None
    for name in DIFFUSERS_WEIGHTS:
        try:
            weights = _diffusers_folder(path, "unet", name)
            break
        except CheckpointError:
            continue
    if weights is None:
        raise CheckpointError(
            f"diffusers folder {path} has no weights ({' or '.join(DIFFUSERS_WEIGHTS)})",
            hint="copy the complete model folder as published",
        )
    if weights.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from robbench.zoo.store import verify_sha256

        if sha256 is not None:
            verify_sha256(weights, sha256)
        try:
            state: Any = load_file(str(weights))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(
                f"{weights} is not a readable safetensors file: {exc}", hint="re-download it"
            ) from None
    else:
        state = load_weights_only(weights, sha256)
    if not _is_tensor_dict(state):
        raise CheckpointError(f"{weights} is not a state dict of tensors", hint="re-download the model folder")
    return {f"unet.{k}": v for k, v in state.items()}


def read(fmt: str, path: str | Path, sha256: str | None, model: nn.Module) -> dict[str, torch.Tensor]:
    """Read the checkpoint at ``path`` in format ``fmt`` (see the module docstring) for ``model``."""
    path = Path(path).expanduser()
    if fmt not in FORMATS:
        raise CheckpointError(
            f"unknown checkpoint format {fmt!r} for {path}", hint=f"use one of state_dict, {', '.join(FORMATS)}"
        )
    if fmt == "diffusers":
        return read_diffusers(path, sha256)
    if fmt == "edm":
        return read_edm_pickle(path, sha256, model)
    obj = load_weights_only(path, sha256)
    if fmt == "ncsnv2":
        return read_ncsnv2(obj, path)
    if fmt == "score_sde":
        return read_score_sde(obj, path, model)
    return read_robustbench(obj, path, model)
