"""A third-party robbench plugin for the executor tests: an attack that fails on chosen samples."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from pydantic import Field

from robbench.attacks.base import Attack
from robbench.core.components import Params
from robbench.errors import DataError


class FaultyParams(Params):
    #: raise RuntimeError when the batch holds a sample with one of these labels
    fail_labels: list[int] = Field(default_factory=list)
    #: kill the whole process (os._exit) when the batch holds one of these labels
    crash_labels: list[int] = Field(default_factory=list)
    #: with fail_labels: fail only the first time per batch (a marker file per batch in this folder)
    fail_once_dir: str | None = None
    #: raise a fatal robbench error (DataError: no unit could succeed) on these labels
    fatal_labels: list[int] = Field(default_factory=list)
    #: write this environment variable's value (or "<unset>") to a file per process in probe_dir
    env_probe: str | None = None
    probe_dir: str | None = None


class Faulty(Attack):
    """Returns the clean input, failing or crashing on chosen labels (executor tests; Linf)."""

    Params = FaultyParams
    norms = frozenset({"linf"})

    def run(self, target, x, y, threat, *, rng):  # type: ignore[no-untyped-def]
        p: FaultyParams = self.params  # type: ignore[assignment]
        labels = set(y.tolist())
        if p.env_probe and p.probe_dir:
            Path(p.probe_dir).mkdir(parents=True, exist_ok=True)
            (Path(p.probe_dir) / f"pid-{os.getpid()}").write_text(os.environ.get(p.env_probe, "<unset>"))
        if labels & set(p.crash_labels):
            os._exit(17)
        if labels & set(p.fatal_labels):
            raise DataError("faulty attack: the data went away", hint="put the data back")
        if labels & set(p.fail_labels):
            if p.fail_once_dir is None:
                raise RuntimeError(f"faulty attack: label in {sorted(labels & set(p.fail_labels))}")
            marker = Path(p.fail_once_dir) / f"seed-{rng.seeds[0]}"
            if not marker.exists():
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text("failed once")
                raise RuntimeError("faulty attack: first attempt fails")
        return x.clone()


class NotADefense:
    """Registered as a defense but subclasses nothing of robbench (the registry must refuse it)."""


class NoShapeModel(torch.nn.Module):
    """A model that does not declare example_input_shape (refused when it loads)."""

    example_config: dict[str, object] = {}

    def forward(self, x):  # type: ignore[no-untyped-def]
        return x.flatten(1)[:, :10]
