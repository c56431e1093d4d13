"""RobustBench's model zoo through the optional ``robustbench`` package, from local files only.

A reference ``robustbench: {name, dataset, threat_model, model_dir}`` loads the entry with RobustBench's own
``robustbench.utils.load_model`` (its architectures, its key fixes), after robbench has checked that the file
``model_dir/<dataset>/<threat_model>/<name>.pt`` is already there (RobustBench would otherwise download it;
robbench downloads nothing), matches ``sha256`` when given, and unpickles weights-only (so nothing in it can
run when RobustBench opens it). ``robustbench`` needs ``torchvision`` (gigabytes), so it is not a dependency:
without it the reference is refused with the alternative, the same file through ``format: robustbench`` into
robbench's own ``dm_wrn`` (WRN-70-16 and other DeepMind WideResNets) or ``wrn28_10`` architectures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from robbench.errors import CheckpointError

INSTALL_HINT = (
    "install it with `pip install robustbench` (it needs torchvision), or load the same file without it: "
    "arch: dm_wrn (WRN-70-16 and other DeepMind WideResNets) or wrn28_10, format: robustbench, checkpoint: PATH"
)


def _fields(rb: Any) -> dict[str, Any]:
    return dict(rb.model_dump()) if hasattr(rb, "model_dump") else dict(rb)


def model_path(rb: Any) -> Path:
    """Where RobustBench's ``load_model`` keeps (and would download) the entry's weights."""
    f = _fields(rb)
    folder = Path(str(f.get("model_dir", "models"))).expanduser()
    return folder / str(f.get("dataset", "cifar10")) / str(f.get("threat_model", "Linf")) / f"{f['name']}.pt"


def check(rb: Any, sha256: str | None) -> Path:
    """The package is importable and the entry's file is local, intact and weights-only; returns its path."""
    from robbench.zoo.store import load_weights_only

    f = _fields(rb)
    try:
        from robustbench.utils import load_model  # noqa: F401
    except ImportError:
        raise CheckpointError(
            f"RobustBench model {f['name']!r} needs the robustbench package, which is not installed", hint=INSTALL_HINT
        ) from None
    path = model_path(rb)
    if not path.is_file():
        raise CheckpointError(
            f"RobustBench model {f['name']!r} is not in {path} (robbench downloads nothing)",
            hint=f"on a machine with internet run robustbench.utils.load_model({f['name']!r}, "
            f"model_dir={f.get('model_dir', 'models')!r}, dataset={f.get('dataset', 'cifar10')!r}, "
            f"threat_model={f.get('threat_model', 'Linf')!r}) and copy the folder here, or set model_dir",
        )
    load_weights_only(path, sha256)  # refuses a file with code before RobustBench's own torch.load sees it
    return path


def load(rb: Any, sha256: str | None) -> nn.Module:
    """The entry as RobustBench builds it (pixels in [0, 1], its normalisation inside), in eval mode."""
    check(rb, sha256)
    from robustbench.utils import load_model

    f = _fields(rb)
    try:
        model = load_model(
            model_name=f["name"],
            model_dir=f.get("model_dir", "models"),
            dataset=f.get("dataset", "cifar10"),
            threat_model=f.get("threat_model", "Linf"),
        )
    except Exception as exc:
        raise CheckpointError(
            f"robustbench could not load {f['name']!r} from {model_path(rb)}: {type(exc).__name__}: {exc}"[:400],
            hint="check the name against RobustBench's model zoo for that data set and threat model",
        ) from None
    if not isinstance(model, nn.Module):
        raise CheckpointError(f"robustbench returned a {type(model).__name__} for {f['name']!r}, not a torch model")
    return model.eval()


def identity(rb: Any, sha256: str | None) -> dict[str, Any]:
    from robbench.zoo.store import sha256_file

    path = model_path(rb)
    return {"robustbench": _fields(rb), "sha256": sha256 or (sha256_file(path) if path.is_file() else None)}
