"""Every registered model architecture, built from its ``example_config``: shapes, [0, 1] inputs,
the generative protocols, and deterministic initialisation under a generator."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from robbench.core.registry import models
from robbench.core.seeding import generator
from robbench.models import build_model, init_weights
from robbench.models.generative import DiffusionModel, ScoreModel, tweedie

ARCHS = models.names()


def _build(arch: str, seed: int = 0) -> tuple[nn.Module, dict[str, Any]]:
    cls = models.get(arch)
    assert isinstance(getattr(cls, "example_config", None), dict), f"{arch}: give the class an example_config dict"
    config = dict(cls.example_config)
    model = init_weights(build_model(arch, **config), generator(seed))
    return model.eval(), config


def _input(model: nn.Module, config: dict[str, Any], b: int = 3) -> torch.Tensor:
    shape = type(model).example_input_shape  # declared by every architecture (see tests/test_contracts.py)
    return torch.rand(b, *shape, generator=generator(1))


def _call(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(model, DiffusionModel):
        t = torch.tensor([0, model.betas.shape[0] // 2, model.betas.shape[0] - 1][: x.shape[0]])
        return model(x * 2 - 1, t, None)
    if isinstance(model, ScoreModel):
        return model(x, model.sigmas[:1].expand(x.shape[0]))
    out: torch.Tensor = model(x)
    return out


def test_every_builtin_architecture_is_registered() -> None:
    assert {"small_cnn", "resnet20", "wrn28_10", "score_unet", "diffusion_unet", "ncsnv2"} <= set(ARCHS)


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_shapes_on_unit_interval_inputs(arch: str) -> None:
    model, config = _build(arch)
    x = _input(model, config)
    with torch.no_grad():
        for probe in (x, torch.zeros_like(x), torch.ones_like(x)):
            out = _call(model, probe)
            assert torch.isfinite(out).all(), f"{arch}: non-finite output on a [0, 1] image"
            if isinstance(model, (ScoreModel, DiffusionModel)):
                assert out.shape == probe.shape
            else:
                assert out.shape == (probe.shape[0], int(config.get("num_classes", 10)))
        # the model reacts to its input (normalisation inside does not swallow it)
        assert not torch.allclose(_call(model, torch.zeros_like(x)), _call(model, torch.ones_like(x)))


@pytest.mark.parametrize("arch", ARCHS)
def test_init_is_a_function_of_the_generator_seed(arch: str) -> None:
    a, _ = _build(arch, seed=5)
    b, _ = _build(arch, seed=5)
    c, _ = _build(arch, seed=6)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].dtype.is_floating_point)


@pytest.mark.parametrize("arch", ARCHS)
def test_generative_protocols(arch: str) -> None:
    model, config = _build(arch)
    x = _input(model, config)
    if isinstance(model, ScoreModel):
        s = model.sigmas
        assert s.ndim == 1 and (s[:-1] > s[1:]).all(), "sigmas must descend"
        # the ladder is geometric: constant ratio between neighbours
        if len(s) > 2:
            r = s[1:] / s[:-1]
            assert torch.allclose(r, r[0].expand_as(r), rtol=1e-4)
        with torch.no_grad():
            d = tweedie(model, x, float(s[-1]))
        assert d.shape == x.shape
    if isinstance(model, DiffusionModel):
        T = model.betas.shape[0]
        assert model.alphas_cumprod.shape == (T,) and (model.alphas_cumprod[1:] < model.alphas_cumprod[:-1]).all()
        t = torch.full((x.shape[0],), T // 2, dtype=torch.long)
        y = torch.arange(x.shape[0]) % model.num_classes
        with torch.no_grad():
            null = model(x, t, torch.full_like(y, model.num_classes))
            assert torch.equal(model(x, t, None), null), "y=None must be the null class"
            if model.class_conditional:
                assert not torch.allclose(model(x, t, y), null), "class labels must change the prediction"


def test_score_unet_sizes_for_digits_fashion_and_cifar() -> None:
    for c, hw in ((1, 8), (1, 28), (3, 32)):
        m = init_weights(build_model("score_unet", in_channels=c, channels=8, depth=2, num_scales=5), generator(0))
        x = torch.rand(2, c, hw, hw, generator=generator(0))
        with torch.no_grad():
            assert m(x, torch.full((2,), 0.1)).shape == x.shape
        d = init_weights(build_model("diffusion_unet", in_channels=c, channels=8, depth=2, timesteps=10), generator(0))
        with torch.no_grad():
            assert d(x * 2 - 1, torch.tensor([0, 9]), torch.tensor([1, 2])).shape == x.shape


def test_score_unet_is_f_over_sigma() -> None:
    """NCSNv2 parameterisation: sigma * s(x, sigma) stays O(1) while s grows like 1/sigma."""
    m = init_weights(build_model("score_unet", channels=8, depth=1, num_scales=4), generator(0)).eval()
    x = torch.rand(4, 1, 8, 8, generator=generator(2))
    with torch.no_grad():
        small = m(x, torch.full((4,), 1e-3)).abs().mean()
        big = m(x, torch.full((4,), 1.0)).abs().mean()
    assert small > 50 * big


def test_bad_architecture_configs_are_user_errors() -> None:
    from robbench.errors import CheckpointError, RegistryError

    with pytest.raises(RegistryError, match="unknown model 'wrn28'"):
        build_model("wrn28")
    with pytest.raises(CheckpointError, match="resnet20.*depth must be 6n\\+2"):
        build_model("resnet20", depth=21)
    with pytest.raises(CheckpointError, match="score_unet.*sigma_max > sigma_min"):
        build_model("score_unet", sigma_max=0.01, sigma_min=0.1)
    with pytest.raises(CheckpointError, match="rejects its config"):
        build_model("small_cnn", no_such_option=1)
