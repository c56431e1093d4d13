"""What a run records about the machine and software it ran on."""

from __future__ import annotations

import importlib.metadata as md
import platform
import sys
from typing import Any

PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "pydantic",
    "typer",
    "rich",
    "scikit-learn",
    "pyautoattack",
    "submitit",
    "torchattacks",
    "matplotlib",
)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def environment() -> dict[str, Any]:
    import torch

    from robbench import RESULTS_VERSION, __version__

    return {
        "robbench": __version__,
        "results_version": RESULTS_VERSION,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": package_versions(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }
