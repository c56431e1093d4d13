"""Contracts every registered component must keep, parametrised over the registries.

A plugin defense, model or data set installed in this environment is covered here without editing
a test: each is built from its ``example_params`` / ``example_config`` (defenses, models) or its
smallest split (data sets) and held to the same rules as the built-ins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from robbench.core import registry
from robbench.core.components import BuildContext, parse_params
from robbench.core.seeding import SampleRNG
from robbench.data import load_dataset
from robbench.defenses.base import Defense
from robbench.errors import RobbenchError

N = 4


@pytest.fixture(scope="module")
def ctx(zoo_dir: Path, digits_classifier: nn.Module) -> BuildContext:
    return BuildContext(
        dataset=load_dataset("digits"), device=torch.device("cpu"), classifier=digits_classifier, zoo_dir=str(zoo_dir)
    )


def _defense(name: str, ctx: BuildContext) -> Defense:
    cls = registry.defenses.get(name)
    params = parse_params(cls.Params, dict(cls.example_params), f"{name}.example_params")
    cls.check_params(params, ctx)
    d: Defense = cls(params, ctx).eval()
    for p in d.parameters():
        p.requires_grad_(False)
    return d


def _rng(n: int = N) -> SampleRNG:
    return SampleRNG([1000 + i for i in range(n)])


@pytest.mark.parametrize("name", registry.defenses.names())
def test_defense_contract(name: str, ctx: BuildContext) -> None:
    d = _defense(name, ctx)
    x = ctx.dataset.load("test").x[:N].clone()
    rng = _rng() if d.stochastic else None
    with torch.no_grad():
        purified = d.purify(x, rng=rng)
        assert purified.shape == x.shape and purified.dtype == torch.float32
        assert float(purified.min()) >= 0.0 and float(purified.max()) <= 1.0, f"{name}: purified pixels leave [0, 1]"
        logits = d(x, _rng() if d.stochastic else None)
    assert logits.shape == (N, ctx.dataset.num_classes) and torch.isfinite(logits).all()
    if d.stochastic:  # det randomness: rewinding the seeds repeats the forward exactly
        r = _rng()
        with torch.no_grad():
            a = d(x, r)
            r.reset()
            b = d(x, r)
        assert torch.equal(a, b), f"{name}: not repeatable with its seeds rewound (det attacks cannot be trusted)"
    xg = x.clone().requires_grad_(True)
    d(xg, _rng() if d.stochastic else None).logsumexp(1).sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all(), f"{name}: full gradient not finite"


def _model(arch: str) -> tuple[nn.Module, dict[str, Any]]:
    from robbench.core.seeding import generator
    from robbench.models import build_model, init_weights

    cls = registry.models.get(arch)
    config = dict(cls.example_config)
    return init_weights(build_model(arch, **config), generator(0)).eval(), config


@pytest.mark.parametrize("arch", registry.models.names())
def test_model_declares_an_input_shape_that_it_accepts(arch: str) -> None:
    from robbench.models.generative import DiffusionModel, ScoreModel

    model, _ = _model(arch)
    shape = getattr(type(model), "example_input_shape", None)
    assert isinstance(shape, tuple) and len(shape) == 3, f"{arch}: declare example_input_shape = (C, H, W)"
    x = torch.rand(2, *shape)
    with torch.no_grad():
        if isinstance(model, DiffusionModel):
            out = model(x * 2 - 1, torch.tensor([0, 1]), None)
        elif isinstance(model, ScoreModel):
            out = model(x, model.sigmas[:1].expand(2))
        else:
            out = model(x)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", registry.datasets.names())
def test_dataset_contract(name: str) -> None:
    cls = registry.datasets.get(name)
    try:
        ds = load_dataset(name)
        split = ds.load("test")
    except RobbenchError as exc:  # files absent: the error must say how to get them
        assert exc.hint, f"{name}: a missing-data error without a fix"
        pytest.skip(f"{name}: data not on this machine ({exc.message})")
    assert cls.name == name
    x, y = split.x[:8], split.y[:8]
    assert x.dtype == torch.float32 and x.ndim == 4 and float(x.min()) >= 0 and float(x.max()) <= 1
    assert y.dtype == torch.int64 and int(y.max()) < ds.num_classes
    assert len(set(split.ids)) == len(split), f"{name}: sample ids not unique"
    assert split.ids[:8] == load_dataset(name).load("test").ids[:8], f"{name}: sample ids not stable across loads"


@pytest.mark.parametrize("kind", sorted(registry.REGISTRIES))
def test_registry_loads_only_subclasses_of_the_kind_base(kind: str) -> None:
    reg = registry.registry(kind)
    for name in reg.names():
        obj = reg.get(name)
        assert isinstance(obj, type) and issubclass(obj, registry.base_class(kind)), f"{kind} {name}"
