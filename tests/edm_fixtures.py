"""Writes EDM network pickles in the official layout (``torch_utils.persistence``), with random weights.

EDM's ``training_loop`` saves ``pickle.dump({"ema", "loss_fn", "augment_pipe", "dataset_kwargs"})``; each network
module is a persistent object pickled as ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with
``meta = {"type": "class", "version": 6, "module_src": <source of training/networks.py>, "class_name", "state":
<the module's __dict__>}``; ``torch.nn.ModuleDict`` (``enc``, ``dec``) pickles as itself; tensors as torch pickles
them (``_rebuild_parameter`` / ``_rebuild_tensor_v2`` over ``_load_from_bytes`` storages); ``dataset_kwargs`` is a
``dnnlib.util.EasyDict``; float constructor arguments such as ``np.sqrt(0.5)`` are numpy scalars. This writer
produces the same opcodes from robbench's ``edm_vp`` modules (renamed to the official class names), under
temporary ``torch_utils``/``dnnlib`` stand-in modules that exist only while the file is written.

``module_src`` here is code that would create the file named by :data:`MARKER` in the working folder if anyone
executed it: the reader never does, and the tests check that the file does not appear.
"""

from __future__ import annotations

import pickle
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robbench.core.seeding import generator
from robbench.models import build_model
from robbench.models.edm_unet import EDMVP, Block, Conv, SongUNet

MARKER = "EDM_MODULE_SRC_WAS_EXECUTED"
MODULE_SRC = f"open({MARKER!r}, 'w').write('module_src ran')\n"
OFFICIAL_NAMES = {EDMVP: "VPPrecond", SongUNet: "SongUNet", Block: "UNetBlock", Conv: "Conv2d",
                  nn.Linear: "Linear", nn.GroupNorm: "GroupNorm"}  # fmt: skip
#: the network constructor arguments of edm-cifar10-32x32-cond-vp.pkl (train.py's cifar10 + ddpmpp + cond)
CIFAR10_KWARGS: dict[str, Any] = {
    "img_resolution": 32, "img_channels": 3, "label_dim": 10, "use_fp16": False, "model_type": "SongUNet",
    "embedding_type": "positional", "encoder_type": "standard", "decoder_type": "standard", "channel_mult_noise": 1,
    "resample_filter": [1, 1], "model_channels": 128, "channel_mult": [2, 2, 2], "augment_dim": 9, "dropout": 0.13,
}  # fmt: skip


def _reconstruct_persistent_obj(meta: Any) -> Any:  # pragma: no cover - only its name is pickled
    raise AssertionError("stand-in: never called")


class EasyDict(dict[str, Any]):
    pass


class _PositionalEmbedding:
    """SongUNet's ``map_noise`` (no weights), pickled for the layout's sake."""


def _meta(class_name: str, state: dict[str, Any]) -> dict[str, Any]:
    return {"type": "class", "version": 6, "module_src": MODULE_SRC, "class_name": class_name, "state": state}


def _state(module: nn.Module, kwargs: dict[str, Any]) -> dict[str, Any]:
    modules: OrderedDict[str, Any] = OrderedDict(module._modules)
    if isinstance(module, SongUNet):
        modules = OrderedDict([("map_noise", _PositionalEmbedding()), *modules.items()])
    return {
        "training": False, "_parameters": OrderedDict(module._parameters), "_buffers": OrderedDict(module._buffers),
        "_non_persistent_buffers_set": set(module._non_persistent_buffers_set), "_modules": modules,
        "_init_args": (), "_init_kwargs": kwargs, "skip_scale": np.sqrt(0.5),
    }  # fmt: skip


class _Pickler(pickle.Pickler):
    def __init__(self, fh: Any, top_kwargs: dict[str, Any]) -> None:
        super().__init__(fh, protocol=4)
        self.top_kwargs = top_kwargs

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _PositionalEmbedding):
            return _reconstruct_persistent_obj, (_meta("PositionalEmbedding", {"num_channels": 128}),)
        if isinstance(obj, EDMVP):
            return _reconstruct_persistent_obj, (_meta("VPPrecond", _state(obj, self.top_kwargs)),)
        name = OFFICIAL_NAMES.get(type(obj))
        if name is not None:
            return _reconstruct_persistent_obj, (_meta(name, _state(obj, {})),)
        return NotImplemented


@contextmanager
def _stand_in_modules() -> Iterator[None]:
    mods = {n: types.ModuleType(n) for n in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")}
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj  # type: ignore[attr-defined]
    mods["dnnlib.util"].EasyDict = EasyDict  # type: ignore[attr-defined]
    _reconstruct_persistent_obj.__module__, EasyDict.__module__ = "torch_utils.persistence", "dnnlib.util"
    saved = {n: sys.modules.get(n) for n in mods}
    sys.modules.update(mods)
    try:
        yield
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def random_edm(seed: int = 11, **config: Any) -> EDMVP:
    """An ``edm_vp`` network with random weights (small normal; the zero-initialised ones too)."""
    model = build_model("edm_vp", **config)
    gen = generator(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    assert isinstance(model, EDMVP)
    return model.eval().requires_grad_(False)


def write_edm(path: Path, model: EDMVP | None = None, **config: Any) -> EDMVP:
    """An EDM network pickle of ``model`` (default: :func:`random_edm` of ``config``) in the official layout."""
    model = model if model is not None else random_edm(**config)
    kwargs = {**CIFAR10_KWARGS, **{k: v for k, v in model.config.items() if k in CIFAR10_KWARGS}}
    kwargs.update(
        {k: model.config[k] for k, d in (("num_blocks", 4), ("attn_resolutions", [16])) if model.config[k] != d}
    )
    loss = _meta("VPLoss", {"beta_d": 19.9, "beta_min": 0.1, "epsilon_t": 1e-5, "_init_kwargs": {}})
    augment = _meta("AugmentPipe", {"p": 0.12, "xflip": 1e8, "yflip": 1, "_init_kwargs": {"p": 0.12}})
    path.parent.mkdir(parents=True, exist_ok=True)
    with _stand_in_modules(), path.open("wb") as fh:
        data = {"ema": model, "loss_fn": _Raw(loss), "augment_pipe": _Raw(augment),
                "dataset_kwargs": EasyDict(path="datasets/cifar10-32x32.zip", resolution=32, use_labels=True)}  # fmt: skip
        _Pickler(fh, kwargs).dump(data)
    return model


class _Raw:
    """A persistent object given by its meta (the loss and augmentation pipe, which have no weights)."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta

    def __reduce__(self) -> Any:
        return _reconstruct_persistent_obj, (self.meta,)
