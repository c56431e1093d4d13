"""``robbench doctor``: what this installation has and lacks, with the fix for every gap.

Sections: versions (robbench, Python, the packages robbench depends on, the git commit), device
(CUDA build and devices, CPU threads, deterministic mode), data sets (which splits are available
here and, for the missing ones, the exact fix), the zoo (every cached checkpoint with its sha256
status, and the recipes not trained yet), extras (the optional packages behind pip extras) and
plugins (installed distributions that register components). Reading is all it does: nothing is
downloaded, trained or written.
"""

from __future__ import annotations

import importlib.metadata as md
import platform
import sys
from dataclasses import asdict, dataclass
from typing import Any

#: optional packages -> the pip extra that installs them
EXTRAS: dict[str, str] = {
    "pyautoattack": "autoattack",
    "submitit": "submitit",
    "torchattacks": "torchattacks",
    "matplotlib": "plot",
}
CORE = (
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "pydantic",
    "pyyaml",
    "typer",
    "rich",
    "scikit-learn",
    "platformdirs",
)
SECTIONS = ("versions", "device", "datasets", "zoo", "extras", "plugins")


@dataclass
class Finding:
    """One line of the report: ``status`` is ok | missing | bad | info."""

    section: str
    name: str
    status: str
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def versions() -> list[Finding]:
    from robbench import RESULTS_VERSION, __version__
    from robbench.run.record import git_state

    git = git_state()
    sha = git["git_sha"]
    out = [
        Finding("versions", "robbench", "ok", f"{__version__} (results format {RESULTS_VERSION})"),
        Finding("versions", "python", "ok", f"{sys.version.split()[0]} on {platform.platform()}"),
        Finding(
            "versions",
            "git",
            "info",
            "not a git checkout" if not sha else f"{sha[:12]}{' with uncommitted changes' if git['git_dirty'] else ''}",
        ),
    ]
    for dist in CORE:
        v = _version(dist)
        out.append(
            Finding(
                "versions",
                dist,
                "ok" if v else "bad",
                v or "not installed",
                None if v else f"pip install {dist}  (a dependency of robbench: reinstall robbench)",
            )
        )
    return out


def device() -> list[Finding]:
    import torch

    out = []
    build = torch.version.cuda
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        out.append(Finding("device", "cuda", "ok", f"CUDA {build}: {len(names)} device(s): {', '.join(names)}"))
    elif build:
        out.append(
            Finding(
                "device",
                "cuda",
                "missing",
                f"torch is built for CUDA {build} but sees no GPU",
                "check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES; runs use the CPU meanwhile",
            )
        )
    else:
        out.append(
            Finding(
                "device",
                "cuda",
                "info",
                f"CPU-only torch build ({torch.__version__}); runs use the CPU",
                "for GPU runs install a CUDA build of torch (https://pytorch.org/get-started)",
            )
        )
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append(Finding("device", "mps", "info", "Apple MPS available (robbench runs on cpu or cuda)"))
    from robbench.run.threads import choose_threads

    choice = choose_threads(None)
    out.append(
        Finding(
            "device",
            "cpu threads",
            "ok" if choice.threads == choice.cores else "info",
            f"robbench run would use {choice.threads} of {choice.cores} usable cores now"
            + ("" if choice.load is None else f" ({choice.load:.2f} cores busy)"),
            None if choice.threads == choice.cores else "other jobs hold the rest; --threads N overrides",
        )
    )
    out.append(
        Finding(
            "device",
            "deterministic",
            "info",
            "torch deterministic algorithms are off by default; `robbench run --deterministic` turns "
            "them on for a run, for repeatable GPU results",
        )
    )
    return out


def datasets(data_dir: str | None = None) -> list[Finding]:
    from robbench.core import registry
    from robbench.data.base import load_dataset
    from robbench.errors import RobbenchError

    out = []
    for name in registry.datasets.names():
        try:
            ds = load_dataset(name, data_dir)
        except Exception as exc:
            out.append(
                Finding(
                    "datasets",
                    name,
                    "bad",
                    f"cannot load the data set class: {getattr(exc, 'message', exc)}",
                    getattr(exc, "hint", None),
                )
            )
            continue
        have, fixes = [], []
        for split in ds.splits:
            try:
                ds.check_available(split)
                size = ds.split_sizes.get(split)
                have.append(f"{split} ({size})" if size else split)
            except RobbenchError as exc:
                fixes.append((split, exc.message, exc.hint))
        if not fixes:
            out.append(Finding("datasets", name, "ok", "available: " + ", ".join(have)))
        else:
            missing = ", ".join(s for s, _, _ in fixes)
            detail = (f"available: {', '.join(have)}; " if have else "") + f"missing: {missing} ({fixes[0][1]})"
            out.append(Finding("datasets", name, "missing", detail, fixes[0][2]))
    return out


def zoo(zoo_dir: str | None = None, *, verify: bool = True) -> list[Finding]:
    from robbench.zoo import ZooStore, recipes

    store = ZooStore(zoo_dir)
    out = [
        Finding(
            "zoo",
            "folder",
            "info",
            f"{store.root}" + ("" if store.root.is_dir() else " (not created yet)"),
            "set $ROBBENCH_ZOO_DIR or pass --zoo-dir to use another cache",
        )
    ]
    checks = {key: (ok, detail) for key, ok, detail in store.verify()} if verify else {}
    cached = set()
    for entry in store.entries():
        key = entry["key"]
        cached.add(key)
        metrics = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in list((entry.get("metrics") or {}).items())[:2]
        )
        what = f"{entry.get('arch', '?')} on {entry.get('dataset', '?')}" + (f", {metrics}" if metrics else "")
        if not verify:
            out.append(Finding("zoo", key, "info", f"{what}; sha256 not checked (--no-verify)"))
            continue
        ok, detail = checks.get(key, (False, "not checked"))
        out.append(
            Finding(
                "zoo",
                key,
                "ok" if ok else "bad",
                f"{what}; sha256 {'verified' if ok else detail}",
                None if ok else f"delete {store.root / key}.* and run `robbench zoo train {entry.get('name', key)}`",
            )
        )
    for name, recipe in recipes().items():
        if recipe.key not in cached:
            out.append(
                Finding(
                    "zoo",
                    name,
                    "info",
                    f"recipe not trained yet ({recipe.arch} on {recipe.dataset})",
                    f"trained on first use, or now: robbench zoo train {name}",
                )
            )
    return out


def extras() -> list[Finding]:
    out = []
    for dist, extra in EXTRAS.items():
        v = _version(dist)
        out.append(
            Finding(
                "extras",
                dist,
                "ok" if v else "missing",
                v or "not installed",
                None if v else f"pip install 'robbench[{extra}]'",
            )
        )
    return out


def plugins() -> list[Finding]:
    from robbench.core import registry
    from robbench.errors import RobbenchError

    out = []
    by_dist: dict[str, list[str]] = {}
    for kind, reg in registry.REGISTRIES.items():
        try:
            entries = reg.entries
        except RobbenchError as exc:  # e.g. two packages claim one name
            out.append(Finding("plugins", kind, "bad", exc.message, exc.hint))
            continue
        for name, entry in entries.items():
            by_dist.setdefault(entry.dist, []).append(f"{kind}:{name}")
            try:
                reg.get(name)  # import it: a plugin that fails to import must not look healthy
            except RobbenchError as exc:
                out.append(Finding("plugins", f"{kind}:{name}", "bad", exc.message, exc.hint))
    for dist, names in sorted(by_dist.items()):
        out.append(
            Finding(
                "plugins",
                dist,
                "ok",
                f"{len(names)} components" + ("" if dist == "robbench" else f": {', '.join(sorted(names))}"),
            )
        )
    return out


def diagnose(*, zoo_dir: str | None = None, data_dir: str | None = None, verify: bool = True) -> list[Finding]:
    """Every finding of every section, in :data:`SECTIONS` order."""
    return [*versions(), *device(), *datasets(data_dir), *zoo(zoo_dir, verify=verify), *extras(), *plugins()]
