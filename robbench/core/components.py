"""Shared base for configurable components: typed, strict parameters and a build context."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from robbench.errors import SuiteError

if TYPE_CHECKING:  # torch only in annotations: `robbench validate` checks a suite's structure without it
    import torch

    from robbench.data.base import Dataset


#: where the default model loader lives (resolved by name: the zoo sits above core, see docs/architecture.md)
ZOO_LOADER = ("robbench.zoo", "load_model")


class Params(BaseModel):
    """Base of every component's parameter model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: parameters added after rows were recorded: at their default they are left out of the component's
    #: identity (:func:`robbench.core.identity.component_identity`), so those rows stay valid
    identity_if_set: ClassVar[frozenset[str]] = frozenset()


class NoParams(Params):
    """A component without parameters."""


def format_validation_error(exc: ValidationError, where: str, model: type[BaseModel] | None = None) -> str:
    """One line per problem: ``where.field: message``; an unknown key of ``model`` gets "did you mean"."""
    from robbench.core.keys import did_you_mean, keys_at

    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            known = keys_at(model, tuple(err["loc"])) if model is not None and err["loc"] else []
            msg = "unknown key" + did_you_mean(str(err["loc"][-1]), known)
        lines.append(f"{where}.{loc}: {msg}" if loc else f"{where}: {msg}")
    more = f"; and {len(lines) - 3} more" if len(lines) > 3 else ""
    return "; ".join(lines[:3]) + more


def parse_params(cls: type[Params], raw: dict[str, Any] | None, where: str) -> Params:
    """Validate ``raw`` against ``cls``; a :class:`SuiteError` naming the field otherwise."""
    try:
        return cls.model_validate(raw or {})
    except ValidationError as exc:
        raise SuiteError(format_validation_error(exc, where, cls)) from None


@dataclass
class BuildContext:
    """What a component may use when it is built: the data set, the classifier, the zoo, a device."""

    dataset: Dataset
    device: torch.device
    suite_seed: int = 0
    classifier: torch.nn.Module | None = None
    zoo_dir: str | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    #: loads a model reference: ``loader(ref, zoo_dir=, device=, train_missing=)``; None: the zoo's
    #: ``load_model``, looked up by name when first needed (core does not import the zoo)
    loader: Callable[..., torch.nn.Module] | None = None

    def model(self, ref: Any, *, train_missing: bool = True) -> torch.nn.Module:
        """Load a model named in a suite (zoo name or checkpoint reference), cached per context."""
        key = repr(ref)
        if key not in self.cache:
            load = self.loader or getattr(importlib.import_module(ZOO_LOADER[0]), ZOO_LOADER[1])
            self.cache[key] = load(ref, zoo_dir=self.zoo_dir, device=self.device, train_missing=train_missing)
        model: torch.nn.Module = self.cache[key]
        return model


#: ``Params`` under a name that the ``Params`` class attribute of :class:`Component` does not shadow
ParamsModel = Params


class Component:
    """Mixin: a registered component with a strict ``Params`` model and a docstring header."""

    Params: ClassVar[type[Params]] = NoParams
    #: parameters for a quick run on digits with tiny models: used by the registry-parametrised
    #: tests and the docs, so every registered component is exercised without editing tests
    example_params: ClassVar[dict[str, object]] = {}
    #: parameter names that never change results (excluded from the identity hash)
    runtime_params: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def check_params(cls, params: ParamsModel, ctx: BuildContext | None) -> None:
        """Cross-field checks that need the data set or other models; raise :class:`SuiteError`."""
        return None
