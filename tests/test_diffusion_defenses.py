"""Diffusion-model defenses (DiffPure, GDMP, RDC, AGDM): the process, randomness, gradients,
costs, validation before compute, and runs through the real runner."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from robbench.core import registry
from robbench.core.components import BuildContext, parse_params
from robbench.core.refs import ModelRef
from robbench.core.seeding import SampleRNG
from robbench.data.base import load_dataset
from robbench.defenses.diffusion_common import (
    ddpm_coefficients,
    predict_x0,
    q_sample,
    reverse_timesteps,
    t_star_index,
)
from robbench.errors import SuiteError
from robbench.models.generative import to_diffusion, vp_schedule
from tests.conftest import base_suite

DEFENSES = ["diffpure", "gdmp", "rdc", "agdm"]
TINY = "tiny-diffusion-digits"
N = 6


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Any:
    """Tiny 8x8 convolutions: one thread is fastest, and immune to oversubscribed CI machines."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> Any:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def x_test(digits: Any) -> Tensor:
    return digits.load("test").x[:N].clone()


@pytest.fixture(scope="module")
def ctx(digits: Any, zoo_dir: Path, digits_classifier: nn.Module) -> BuildContext:
    return BuildContext(dataset=digits, device=torch.device("cpu"), classifier=digits_classifier, zoo_dir=str(zoo_dir))


def build(name: str, ctx: BuildContext, **overrides: Any) -> Any:
    cls = registry.defenses.get(name)
    params = parse_params(cls.Params, dict(cls.example_params, **overrides), name)
    cls.check_params(params, ctx)
    d = cls(params, ctx).eval()
    for p in d.parameters():
        p.requires_grad_(False)
    return d


def rng(seed: int, n: int = N) -> SampleRNG:
    return SampleRNG([seed * 1000 + i for i in range(n)])


class Oracle(nn.Module):
    """A perfect denoiser for one known clean batch: eps_hat = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)."""

    def __init__(self, x0_pixels: Tensor, timesteps: int = 50, class_conditional: bool = True) -> None:
        super().__init__()
        betas, abar = vp_schedule(timesteps, 1e-3, 0.2)
        self.register_buffer("betas", betas)
        self.register_buffer("alphas_cumprod", abar)
        self.register_buffer("x0", to_diffusion(x0_pixels))
        self.num_classes = 10
        self.class_conditional = class_conditional
        self.calls = 0

    def forward(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        self.calls += x_t.shape[0]
        a = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        x0 = self.x0.repeat(x_t.shape[0] // self.x0.shape[0], 1, 1, 1)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()


def with_model(ctx: BuildContext, model: nn.Module, key: str) -> tuple[BuildContext, dict[str, Any]]:
    """A context whose cache already holds ``model`` under a checkpoint reference (tests only)."""
    ref = {"arch": "diffusion_unet", "checkpoint": f"/nonexistent/{key}.pt"}
    c = BuildContext(dataset=ctx.dataset, device=ctx.device, classifier=ctx.classifier, zoo_dir=ctx.zoo_dir)
    c.cache[repr(ModelRef.model_validate(ref))] = model
    return c, ref


def build_unchecked(name: str, ctx: BuildContext, **overrides: Any) -> Any:
    cls = registry.defenses.get(name)
    params = parse_params(cls.Params, dict(cls.example_params, **overrides), name)
    return cls(params, ctx).eval()


# ---- the process ------------------------------------------------------------------------------
def test_schedule_helpers() -> None:
    assert t_star_index(0.1, 1000) == 99 and t_star_index(1.0, 1000) == 999 and t_star_index(1e-6, 1000) == 0
    assert reverse_timesteps(9, None) == list(range(9, -1, -1))
    seq = reverse_timesteps(99, 10)
    assert seq[0] == 99 and seq[-1] == 0 and len(seq) == 10 and all(a > b for a, b in itertools.pairwise(seq))
    assert reverse_timesteps(5, 1) == [5]
    assert ddpm_coefficients(0.3, 1.0) == pytest.approx((1.0, 0.0, 0.0))
    # an unstrided step reproduces the DDPM posterior: beta_t = 1 - abar_t / abar_{t-1}
    betas, abar = vp_schedule(100)
    t = 40
    c0, ct, var = ddpm_coefficients(float(abar[t]), float(abar[t - 1]))
    b = float(betas[t])
    assert c0 == pytest.approx(math.sqrt(float(abar[t - 1])) * b / (1 - float(abar[t])), rel=1e-5)
    assert ct == pytest.approx(math.sqrt(1 - b) * (1 - float(abar[t - 1])) / (1 - float(abar[t])), rel=1e-5)
    assert var == pytest.approx(b * (1 - float(abar[t - 1])) / (1 - float(abar[t])), rel=1e-5)
    x0, eps = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    assert torch.allclose(predict_x0(q_sample(x0, 0.7, eps), eps, 0.7), x0, atol=1e-5)


@pytest.mark.parametrize(("name", "sampler"), [("diffpure", "ddpm"), ("diffpure", "ddim"), ("gdmp", "ddim")])
def test_reverse_chain_with_a_perfect_denoiser_returns_the_clean_image(
    name: str, sampler: str, ctx: BuildContext, x_test: Tensor
) -> None:
    oracle = Oracle(x_test)
    c, ref = with_model(ctx, oracle, "oracle")
    d = build_unchecked(name, c, diffusion_model=ref, t_star=0.6, steps=7, sampler=sampler, clip_denoised=False)
    with torch.no_grad():
        out = d.purify(x_test, rng=rng(3))
    assert torch.allclose(out, x_test, atol=1e-4), float((out - x_test).abs().max())
    assert oracle.calls == 7 * N and d.evals == 7 * N


def test_forward_diffusion_reaches_t_star(ctx: BuildContext, x_test: Tensor) -> None:
    """t_star is a fraction of the schedule: round(t_star * T) forward steps; every timestep by default."""
    oracle = Oracle(x_test, timesteps=50)
    c, ref = with_model(ctx, oracle, "oracle-t")
    d = build_unchecked("diffpure", c, diffusion_model=ref, t_star=0.5, steps=None)
    assert d.t_start == 24 and d.timesteps == list(range(24, -1, -1))


# ---- randomness -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", DEFENSES)
def test_fixed_seed_deterministic_other_seed_differs_batch_free(name: str, ctx: BuildContext, x_test: Tensor) -> None:
    d = build(name, ctx)
    assert d.stochastic
    with torch.no_grad():
        a, b, c = d.purify(x_test, rng=rng(1)), d.purify(x_test, rng=rng(1)), d.purify(x_test, rng=rng(2))
        la, lb = d(x_test, rng(1)), d(x_test, rng(1))
        part = d.purify(x_test[2:5], rng=SampleRNG(rng(1).seeds[2:5]))
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)
    assert (a - c).abs().amax(dim=(1, 2, 3)).gt(0).all(), "every sample must get its own draws"
    torch.testing.assert_close(part, a[2:5], atol=1e-5, rtol=1e-5)
    assert a.min() >= 0 and a.max() <= 1 and a.shape == x_test.shape


# ---- gradients --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", DEFENSES)
def test_full_gradient_finite_nonzero_and_checkpointing_is_exact(name: str, ctx: BuildContext, x_test: Tensor) -> None:
    from robbench.attacks.target import Target

    d = build(name, ctx)
    y = torch.arange(N) % 10
    grads = []
    for ckpt in (False, True):
        target = Target(d, gradient="full", randomness="det", rng=rng(5))
        d.grad_checkpointing(ckpt)  # Target turned it on; compare both ways
        _, g, logits = target.loss_grad(x_test, y)
        assert torch.isfinite(g).all() and torch.isfinite(logits).all()
        assert g.flatten(1).abs().sum(1).gt(0).all(), "zero input gradient for some sample"
        grads.append(g)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)


# ---- costs ------------------------------------------------------------------------------------
def test_evaluation_counts(ctx: BuildContext, x_test: Tensor) -> None:
    steps = 3
    with torch.no_grad():
        for name, per_image in (("diffpure", steps + 1), ("gdmp", steps + 1), ("agdm", 2 * steps + 1 + 1)):
            d = build(name, ctx, steps=steps)
            d(x_test, rng(1))  # purification + one classifier evaluation
            assert d.evals == per_image * N, name
        r = build("rdc", ctx, steps=2, lm_samples=3, n_timesteps=4)
        r.purify(x_test, rng=rng(1))
        assert r.evals == 2 * 3 * N
        r.classify(x_test)
        assert r.evals == 2 * 3 * N + 10 * 4 * N


# ---- guidance ---------------------------------------------------------------------------------
def test_gdmp_guidance_pulls_toward_the_input(ctx: BuildContext, x_test: Tensor) -> None:
    with torch.no_grad():
        plain = build("diffpure", ctx, t_star=0.5, steps=5).purify(x_test, rng=rng(7))
        guided = build("gdmp", ctx, t_star=0.5, steps=5, guidance_scale=20.0).purify(x_test, rng=rng(7))
    assert (guided - x_test).abs().mean() < 0.8 * (plain - x_test).abs().mean()


def test_agdm_guidance_keeps_auxiliary_features(ctx: BuildContext, x_test: Tensor) -> None:
    with torch.no_grad():
        off = build("agdm", ctx, t_star=0.5, steps=5, guidance_scale=0.0)
        on = build("agdm", ctx, t_star=0.5, steps=5, guidance_scale=0.01)
        h = on.features
        d_off = (h(off.purify(x_test, rng=rng(7))) - h(x_test)).pow(2).sum(1)
        d_on = (h(on.purify(x_test, rng=rng(7))) - h(x_test)).pow(2).sum(1)
    assert d_on.mean() < 0.8 * d_off.mean()


def test_agdm_feature_hook_matches_latent(ctx: BuildContext, x_test: Tensor) -> None:
    from robbench.defenses.agdm import latent_features

    clf = ctx.classifier
    assert clf is not None

    class NoLatent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = clf

        def forward(self, x: Tensor) -> Tensor:
            out: Tensor = self.inner(x)
            return out

    with torch.no_grad():
        torch.testing.assert_close(latent_features(NoLatent())(x_test), clf.latent(x_test))  # type: ignore[operator]


# ---- RDC ----------------------------------------------------------------------------------------
def test_rdc_logits_are_the_shared_draw_diffusion_errors(ctx: BuildContext, x_test: Tensor) -> None:
    r = build("rdc", ctx, n_timesteps=5)
    T = r.T
    ts = r.cls_t.tolist()
    assert len(ts) == 5 and all(math.floor(i * T / 5) <= t < math.floor((i + 1) * T / 5) + 1 for i, t in enumerate(ts))
    with torch.no_grad():
        logits = r.classify(x_test)
        model = r.diffusion
        for y in (0, 7):
            errs = []
            for i, t in enumerate(ts):
                a = r.abar_all[t]
                eps = r.cls_eps[i].expand_as(x_test)
                xt = a.sqrt() * to_diffusion(x_test) + (1 - a).sqrt() * eps
                e = model(xt, torch.full((N,), t), torch.full((N,), y))
                errs.append((e - eps).pow(2).flatten(1).sum(1))
            torch.testing.assert_close(logits[:, y], -torch.stack(errs, 1).mean(1), atol=1e-4, rtol=1e-5)
    # deterministic classifier, independent of the batch
    with torch.no_grad():
        torch.testing.assert_close(r.classify(x_test[1:3]), logits[1:3], atol=1e-4, rtol=1e-5)
    assert torch.equal(
        build("rdc", ctx, n_timesteps=5, timestep_offset="center").cls_t,
        torch.tensor([math.floor((i + 0.5) * T / 5) for i in range(5)]),
    )


def test_rdc_likelihood_maximisation_stays_in_its_ball_and_lowers_the_loss(ctx: BuildContext, x_test: Tensor) -> None:
    r = build("rdc", ctx, eta=0.2, steps=6, lm_samples=8)
    with torch.no_grad():
        out = r.purify(x_test, rng=rng(4))
        assert (out - x_test).abs().max() <= 0.2 + 1e-6 and out.min() >= 0 and out.max() <= 1
        g = torch.Generator().manual_seed(0)
        t = torch.randint(r.T, (N * 64,), generator=g)
        eps = torch.randn((N * 64, *x_test.shape[1:]), generator=g)
        before = r.diffusion_loss(x_test.repeat_interleave(64, 0), t, eps).mean()
        after = r.diffusion_loss(out.repeat_interleave(64, 0), t, eps).mean()
    assert after < before


# ---- validation before compute ----------------------------------------------------------------
@pytest.mark.parametrize("name", DEFENSES)
@pytest.mark.parametrize("bad", [{"steps": 0}, {"t_star": 0.0}, {"t_star": 1.5}, {"t_star": -0.1}])
def test_bad_parameters_name_the_field(name: str, bad: dict[str, Any]) -> None:
    if name == "rdc" and "t_star" in bad:
        bad = {"eta": -0.1}
    cls = registry.defenses.get(name)
    field = next(iter(bad))
    with pytest.raises(SuiteError, match=field):
        parse_params(cls.Params, dict(cls.example_params, **bad), f"defense {name}")


def test_validate_rejects_bad_models_before_any_compute(
    write_suite: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from robbench.api import validate
    from robbench.models import build_model

    zoo = tmp_path / "empty-zoo"
    monkeypatch.setenv("ROBBENCH_ZOO_DIR", str(zoo))
    uncond_cfg = {"channels": 8, "depth": 1, "timesteps": 20, "class_conditional": False}
    uncond = tmp_path / "uncond.pt"
    torch.save(build_model("diffusion_unet", **uncond_cfg).state_dict(), uncond)
    cases = [
        (
            {
                "name": "rdc",
                "params": {
                    "diffusion_model": {"arch": "diffusion_unet", "checkpoint": str(uncond), "config": uncond_cfg}
                },
            },
            "diffusion_model",
            "not class-conditional",
        ),
        ({"name": "agdm", "params": {"aux_model": "no-such-net"}}, "aux_model", "no-such-net"),
        (
            {"name": "agdm", "params": {"aux_model": {"arch": "small_cnn", "checkpoint": str(tmp_path / "gone.pt")}}},
            "aux_model",
            "not found",
        ),
        (
            {"name": "diffpure", "params": {"diffusion_model": "no-such-diffusion"}},
            "diffusion_model",
            "no-such-diffusion",
        ),
        ({"name": "diffpure", "params": {"diffusion_model": TINY, "t_star": 0.5, "steps": 10_000}}, "steps", "steps"),
        ({"name": "diffpure", "params": {"t_star": 0}}, "t_star", "greater than 0"),
        ({"name": "gdmp", "params": {"steps": 0}}, "steps", "greater than or equal to 1"),
        ({"name": "rdc", "params": {"diffusion_model": "digits-cnn"}}, "diffusion_model", "not a diffusion model"),
        ({"name": "rdc", "params": {"diffusion_model": TINY, "n_timesteps": 5000}}, "n_timesteps", "exceeds"),
    ]
    for defense, field, text in cases:
        with pytest.raises(SuiteError) as err:
            validate(write_suite(base_suite(defenses=[defense])))
        assert field in err.value.message and text in err.value.message, (defense, err.value.message)
    assert not zoo.exists() or not any(zoo.iterdir()), "validation trained or wrote a model"
    validate(
        write_suite(
            base_suite(defenses=[{"name": n, "params": registry.defenses.get(n).example_params} for n in DEFENSES])
        )
    )
    assert not zoo.exists() or not any(zoo.iterdir())
    # the CLI: one clear message, exit code 2
    import os

    bad = write_suite(base_suite(defenses=[cases[0][0]]), "bad.yaml")
    res = subprocess.run(
        [sys.executable, "-m", "robbench.cli", "validate", str(bad)],
        capture_output=True,
        text=True,
        env=dict(os.environ, ROBBENCH_ZOO_DIR=str(zoo)),
    )
    assert res.returncode == 2 and "not class-conditional" in res.stderr and "Traceback" not in res.stderr


# ---- through the runner -----------------------------------------------------------------------
def test_runner_rows_repeatable_batch_free_and_costed(write_suite: Any, tmp_path: Path, zoo_dir: Path) -> None:
    from robbench.api import run
    from robbench.results.store import ResultsDir

    suite = base_suite(
        data={"dataset": "digits", "split": "test", "n_samples": 6},
        defenses=[{"name": n, "params": registry.defenses.get(n).example_params} for n in DEFENSES],
        attacks=[
            {"id": "clean", "name": "clean"},
            {"id": "gPGD3", "name": "pgd", "params": {"steps": 3}, "gradient": "classifier"},
        ],
        evaluation={"batch_size": 4, "draws": 2, "overrides": ["few-draws"]},
    )
    path = write_suite(suite)
    for out, bs in (("a", None), ("b", None), ("c", 3)):  # twice the same, then another batch size
        rep = run(path, out=tmp_path / out, quiet=True, batch_size=bs, threads=1)
        assert not rep.failures, rep.failures
    drop = ["seconds", "peak_mem_mb", "loss_trace"]
    a, b, c = (
        ResultsDir(tmp_path / k)
        .read_rows()
        .sort_values(["cell", "sample_id"])
        .reset_index(drop=True)
        .drop(columns=drop)
        for k in "abc"
    )
    import pandas as pd

    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a.drop(columns=["model_evals"]), c.drop(columns=["model_evals"]))
    assert a["error"].isna().all() and a["stochastic"].all()
    rdc = a[(a.defense == "rdc") & (a.attack == "gPGD3")]
    ex = registry.defenses.get("rdc").example_params
    # gray-box PGD on RDC queries its diffusion classifier: K * n_timesteps images per query
    assert (rdc["model_evals"] >= 3 * 10 * int(ex["n_timesteps"])).all()  # type: ignore[call-overload]
