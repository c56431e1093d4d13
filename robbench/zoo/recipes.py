"""Zoo recipes: the built-in ``recipes.yaml`` plus recipes registered by plugins."""

from __future__ import annotations

import difflib
import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from robbench.errors import CheckpointError


class Recipe(BaseModel):
    """How one zoo model is trained: architecture, config, data set, trainer, training config, seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    arch: str
    config: dict[str, Any] = Field(default_factory=dict)
    dataset: str
    trainer: str
    train: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    #: other zoo models this one needs (e.g. the score model of an augmentation-trained classifier)
    requires: dict[str, str] = Field(default_factory=dict)

    @property
    def hash(self) -> str:
        """Hash of everything that shapes the weights, including the recipes this one requires."""
        body = self.model_dump(exclude={"name", "description"})
        if self.requires:
            table = recipes()
            body["requires"] = {role: (table[n].hash if n in table else n) for role, n in sorted(self.requires.items())}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:10]

    @property
    def key(self) -> str:
        """File stem in the zoo folder: name plus recipe hash."""
        return f"{self.name}-{self.hash}"

    def with_overrides(self, steps: int | None = None, dataset: str | None = None) -> Recipe:
        upd: dict[str, Any] = {}
        if steps is not None:
            upd["train"] = dict(self.train, steps=steps)
        if dataset is not None:
            upd["dataset"] = dataset
        return self.model_copy(update=upd) if upd else self


@cache
def recipes() -> dict[str, Recipe]:
    raw = yaml.safe_load(resources.files("robbench.zoo").joinpath("recipes.yaml").read_text())
    return {name: Recipe(name=name, **body) for name, body in raw.items()}


def get_recipe(name: str) -> Recipe:
    table = recipes()
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5)
        did = f" Did you mean: {', '.join(close)}?" if close else ""
        raise CheckpointError(
            f"unknown zoo model {name!r}.{did}", hint="run `robbench zoo ls --recipes` for the known names"
        )
    return table[name]
