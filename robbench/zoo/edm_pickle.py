"""EDM's network pickles read as data: the weights come out, none of the pickle's code runs.

EDM (Karras et al. 2022) publishes its networks as Python pickles written with ``torch_utils.persistence``
(``edm-cifar10-32x32-cond-vp.pkl``: ``{"ema": VPPrecond, "loss_fn", "augment_pipe", "dataset_kwargs"}``).
Each persistent object pickles as ``_reconstruct_persistent_obj(meta)``, whose ``meta`` carries the source
code of its module, which the official loader executes. ``pickle.load`` or ``torch.load(weights_only=False)``
on such a file runs code from the file.

This reader uses an unpickler that resolves only the names in :data:`ALLOWED`, each to a function of
robbench's that builds data: persistent objects become :class:`Persistent` records (class name and state;
``module_src`` is never compiled), ``torch.nn.ModuleDict`` and ``dnnlib.util.EasyDict`` become inert records,
tensors are rebuilt by torch's own weights-only helpers, and the byte blobs of storages are read with
``torch.load(weights_only=True)``. Any other global (``os.system``, ``builtins.eval``, a class of some
package) refuses the whole file with :class:`~robbench.errors.CheckpointError` before anything is built.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch._utils

from robbench.errors import CheckpointError

HINT = (
    "give EDM's network pickle as published (e.g. edm-cifar10-32x32-cond-vp.pkl from "
    "nvlabs-fi-cdn.nvidia.com/edm/pretrained/), unmodified"
)


class Persistent:
    """A ``torch_utils.persistence`` object as data: its class name and pickled state (a module's ``__dict__``)."""

    def __init__(self, class_name: str, state: Mapping[str, Any]) -> None:
        self.class_name, self.state = class_name, dict(state)


class Plain:
    """An allowed non-persistent object (``torch.nn.ModuleDict``): its class name and pickled state."""

    kind = "object"

    def __setstate__(self, state: Any) -> None:
        self.state = dict(state) if isinstance(state, Mapping) else {}


class _ModuleDict(Plain):
    kind = "ModuleDict"


class _EasyDict(dict[str, Any]):
    """``dnnlib.util.EasyDict``'s items, as a plain dict."""

    def __setstate__(self, state: Any) -> None:
        pass


def _persistent(meta: Any) -> Persistent:
    if not isinstance(meta, Mapping) or meta.get("type") != "class" or not isinstance(meta.get("state"), Mapping):
        raise CheckpointError("a persistent object in the pickle has no class state", hint=HINT)
    return Persistent(str(meta.get("class_name")), meta["state"])


def _storage(data: bytes) -> Any:
    if not isinstance(data, bytes):
        raise CheckpointError("a tensor storage in the pickle is not a byte string", hint=HINT)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or not isinstance(data, bytes) or dtype.hasobject:
        raise CheckpointError("a numpy scalar in the pickle is not plain numeric data", hint=HINT)
    return np.frombuffer(data, dtype=dtype)[0].item()


def _dtype(name: Any, *args: Any) -> np.dtype[Any]:
    if not isinstance(name, str):
        raise CheckpointError("a numpy dtype in the pickle is not named by a string", hint=HINT)
    return np.dtype(name)


#: every global the reader resolves, and what it resolves to (robbench's data builders, or torch's
#: weights-only tensor helpers); any other global refuses the file
ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _storage,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch.nn.modules.container", "ModuleDict"): _ModuleDict,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy", "dtype"): _dtype,
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED` globals and refuses persistent ids."""

    def __init__(self, fh: Any, path: Path) -> None:
        super().__init__(fh)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        found = ALLOWED.get((module, name))
        if found is None:
            raise CheckpointError(
                f"{self.path} is a pickle carrying code: it references {module}.{name}, which robbench will not "
                "import or run (refused; nothing was executed)",
                hint=HINT,
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(f"{self.path} uses pickle persistent ids, which EDM's pickles do not", hint=HINT)


def load_pickle(path: Path) -> Any:
    """Unpickle ``path`` with :class:`SafeUnpickler`; truncation and corruption become :class:`CheckpointError`."""
    try:
        with path.open("rb") as fh:
            return SafeUnpickler(fh, path).load()
    except CheckpointError:
        raise
    except EOFError:
        raise CheckpointError(f"{path} ends early (truncated pickle)", hint=HINT) from None
    except pickle.UnpicklingError as exc:
        if "truncated" in str(exc):
            raise CheckpointError(f"{path} ends early (truncated pickle)", hint=HINT) from None
        raise CheckpointError(f"{path} is not a readable pickle: {exc}"[:400], hint=HINT) from None
    except Exception as exc:
        raise CheckpointError(
            f"{path} is not a readable pickle: {type(exc).__name__}: {exc}"[:400], hint=HINT
        ) from None


def tensors(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """The parameters and persistent buffers of a pickled module tree, by dotted name (as ``state_dict``)."""
    state = obj.state if isinstance(obj, (Persistent, Plain)) else {}
    out: dict[str, torch.Tensor] = {}
    skip = state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, t in (state.get(group) or {}).items():
            if isinstance(t, torch.Tensor) and name not in skip:
                out[prefix + name] = t.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(tensors(child, f"{prefix}{name}."))
    return out


def read_edm(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The ``ema`` network's state dict and its constructor arguments (``init_kwargs``) from an EDM pickle."""
    obj = load_pickle(path)
    net = obj.get("ema") if isinstance(obj, Mapping) else None
    if not isinstance(net, Persistent):
        found = sorted(map(str, obj))[:5] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{path} is not an EDM network pickle: expected a dict with the network under 'ema', found {found}",
            hint=HINT,
        )
    if net.class_name != "VPPrecond":
        raise CheckpointError(
            f"{path} holds an EDM {net.class_name}; robbench's edm_vp architecture is VPPrecond's",
            hint="use a *-vp.pkl network (e.g. edm-cifar10-32x32-cond-vp.pkl)",
        )
    kwargs = net.state.get("_init_kwargs")
    return tensors(net), dict(kwargs) if isinstance(kwargs, Mapping) else {}
