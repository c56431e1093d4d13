"""Score-model purifiers (PurSAMERE, ScoreOpt, ADP): determinism, seeds, batch invariance, the
objective, full-mode gradients against finite differences, costs, validation before compute, and
runs through the real runner. The slow tests reproduce the paper's pattern on digits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from torch import Tensor, nn

from robbench.attacks.target import Target
from robbench.core import registry
from robbench.core.components import BuildContext, parse_params
from robbench.core.seeding import SampleRNG, generator
from robbench.core.threat import norm_of
from robbench.data.base import load_dataset
from robbench.errors import SuiteError
from robbench.models.generative import tweedie
from tests.conftest import base_suite

TINY = "tiny-score-digits"
DEFENSES = ["pursamere", "scoreopt", "adp"]


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Any:
    """Tiny networks gain nothing from intra-op threads, and on a shared 2-core machine two spinning
    OpenMP threads make each small convolution ~20x dearer in CPU time; restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def digits() -> Any:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def x_test(digits: Any) -> Tensor:
    return digits.load("test").x[:64].clone()


@pytest.fixture(scope="module")
def ctx(digits: Any, zoo_dir: Path, digits_classifier: nn.Module) -> BuildContext:
    return BuildContext(dataset=digits, device=torch.device("cpu"), classifier=digits_classifier, zoo_dir=str(zoo_dir))


def build(name: str, ctx: BuildContext, *, defaults: bool = False, **overrides: Any) -> Any:
    """The defense with its example params (or, with ``defaults``, its own defaults) plus overrides."""
    cls = registry.defenses.get(name)
    base = {} if defaults else cls.example_params
    params = parse_params(cls.Params, dict(base, **overrides), name)
    cls.check_params(params, ctx)
    d = cls(params, ctx).eval()
    for p in d.parameters():
        p.requires_grad_(False)
    return d


def rng_for(n: int, *tag: object) -> SampleRNG:
    return SampleRNG.for_samples(range(n), "test-score", *tag)


def test_example_params_use_the_tiny_score_model() -> None:
    for name in DEFENSES:
        cls = registry.defenses.get(name)
        assert cls.example_params["score_model"] == TINY
        assert registry.defenses.describe(name)


# ---- PurSAMERE: a deterministic function of its input ---------------------------------------------
@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.5), ("l1", 2.0)])
def test_pursamere_is_deterministic_and_batch_invariant(
    ctx: BuildContext, x_test: Tensor, norm: str, eps: float
) -> None:
    d = build("pursamere", ctx, norm=norm, eps_pur=eps)
    assert d.stochastic is False
    a = d.purify(x_test)
    b = d.purify(x_test)
    assert torch.equal(a, b)
    # batch size 1 against 64, at positions spread over the batch (first, last, and between)
    positions = [0, 1, 9, 20, 31, 42, 57, 63]
    one_by_one = torch.cat([d.purify(x_test[i : i + 1]) for i in positions])
    assert torch.equal(a[positions], one_by_one), float((a[positions] - one_by_one).abs().max())
    perm = torch.randperm(x_test.shape[0], generator=generator(7))
    assert torch.equal(d.purify(x_test[perm])[perm.argsort()], a)
    # a fresh instance (same seed) draws the same Monte Carlo noise
    assert torch.equal(build("pursamere", ctx, norm=norm, eps_pur=eps).purify(x_test[:5]), a[:5])
    # outputs stay in the eps_pur ball and in [0, 1], and the purifier does move the input
    assert (norm_of(a - x_test, norm) <= eps * (1 + 1e-5) + 1e-6).all()
    assert a.min() >= 0 and a.max() <= 1
    assert (a - x_test).abs().max() > 1e-3


def test_pursamere_seed_changes_the_draws(ctx: BuildContext, x_test: Tensor) -> None:
    a = build("pursamere", ctx).purify(x_test[:8])
    b = build("pursamere", ctx, seed=1).purify(x_test[:8])
    assert not torch.equal(a, b)


def test_pursamere_objective_is_the_normalised_reconstruction_error(ctx: BuildContext, x_test: Tensor) -> None:
    d = build("pursamere", ctx, n_mc=3)
    x = x_test[:4]
    xi = d.mc_draws(tuple(x.shape[1:]), x.device)
    sigma = d.sigmas[0]
    got = d.reconstruction_error(x, sigma, xi)
    want = torch.stack(
        [
            torch.stack(
                [
                    ((tweedie(d.score_model, x[i : i + 1] + sigma * xi[n : n + 1], sigma) - x[i : i + 1]) ** 2).sum()
                    for n in range(3)
                ]
            ).mean()
            / sigma**2
            for i in range(4)
        ]
    )
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_pursamere_default_levels_are_the_ladder_inside_the_default_sigma_range(ctx: BuildContext) -> None:
    from robbench.defenses.pursamere import DEFAULT_SIGMA_RANGE

    d = build("pursamere", ctx, levels=None)
    hi, lo = DEFAULT_SIGMA_RANGE
    want = [s for s in d.score_model.sigmas.tolist() if lo <= s <= hi]
    assert want and d.sigmas == pytest.approx(want)
    assert build("pursamere", ctx, levels=None, sigma_range=[0.08, 0.04]).sigmas == pytest.approx(
        [s for s in d.score_model.sigmas.tolist() if 0.04 <= s <= 0.08]
    )


def test_pursamere_schedule_levels_and_costs(ctx: BuildContext, x_test: Tensor) -> None:
    d = build("pursamere", ctx, levels=3, steps_per_level=2, lr_max=0.04, lr_min=0.01, n_mc=2)
    ladder = d.score_model.sigmas.tolist()
    assert d.sigmas == pytest.approx(ladder[-3:])  # the three smallest, largest first
    sched = d.schedule()
    assert [s for s, _ in sched] == pytest.approx([ladder[-3]] * 2 + [ladder[-2]] * 2 + [ladder[-1]] * 2)
    assert [lr for _, lr in sched] == pytest.approx([0.04, 0.04, 0.025, 0.025, 0.01, 0.01])
    d.evals = 0
    d.purify(x_test[:5])
    assert d.evals == 5 * 2 * 6 * 2  # images x draws x steps x (gradient + SAM gradient)
    nosam = build("pursamere", ctx, levels=[2, 4], sam=False, n_mc=2)
    assert nosam.sigmas == pytest.approx(ladder[2:5])
    nosam.purify(x_test[:5])
    assert nosam.evals == 5 * 2 * 3 * 1


# ---- stochastic purifiers: randomness only from the SampleRNG -------------------------------------
STOCHASTIC = [
    ("scoreopt", {"variant": "o", "loss": "diff"}),
    ("scoreopt", {"variant": "n", "loss": "mse", "lam": 0.5}),
    ("scoreopt", {"variant": "n", "loss": "sr"}),
    ("adp", {}),
]


@pytest.mark.parametrize("name,params", STOCHASTIC, ids=str)
def test_stochastic_purifiers_follow_their_seeds(
    ctx: BuildContext, x_test: Tensor, name: str, params: dict[str, Any]
) -> None:
    d = build(name, ctx, **params)
    x = x_test[:16]
    assert d.stochastic is True
    a = d.purify(x, rng=rng_for(16, "a"))
    assert torch.equal(a, d.purify(x, rng=rng_for(16, "a")))
    other = d.purify(x, rng=rng_for(16, "b"))
    assert not torch.equal(a, other)
    one_by_one = torch.cat([d.purify(x[i : i + 1], rng=rng_for(16, "a").select([i])) for i in range(16)])
    assert torch.equal(a, one_by_one)
    assert a.min() >= 0 and a.max() <= 1 and torch.isfinite(a).all()
    assert (a - x).abs().max() > 1e-3
    with pytest.raises(Exception, match="SampleRNG"):
        d.purify(x)


def test_scoreopt_o_with_diff_loss_is_deterministic_given_t_and_noise(ctx: BuildContext, x_test: Tensor) -> None:
    # variant o draws no start noise: two different rng streams still differ only through t and eps
    d = build("scoreopt", ctx, variant="o", loss="diff", steps=1)
    a = d.purify(x_test[:4], rng=rng_for(4, "a"))
    b = d.purify(x_test[:4], rng=rng_for(4, "a"))
    assert torch.equal(a, b)


def test_adp_first_step_is_a_tweedie_denoise_of_the_noised_input(ctx: BuildContext, x_test: Tensor) -> None:
    d = build("adp", ctx, steps=1, step_size=1.0, noise_std=0.2)
    x = x_test[:4]
    out = d.purify(x, rng=rng_for(4, "adp"))
    noise = rng_for(4, "adp").randn(*x.shape[1:])
    want = tweedie(d.score_model, x + 0.2 * noise, 0.2).clamp(0, 1)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)


# ---- gradients ----------------------------------------------------------------------------------
class SmoothScore(nn.Module):
    """A small smooth float64 score network (ScoreModel protocol) for finite-difference checks.

    Adam's first step is ``lr * g / (|g| + eps)``, nearly a sign, so the purifiers are smooth only
    on scales far below float32 resolution; float64 and a tiny step make central differences exact
    enough. The zoo's score U-Net computes its noise embedding in float32, hence this stand-in.
    """

    def __init__(self, sigmas: Tensor) -> None:
        super().__init__()
        g = generator(21)
        self.register_buffer("sigmas", sigmas.double())
        self.register_buffer("w1", torch.randn(6, 1, 3, 3, generator=g, dtype=torch.float64) * 0.4)
        self.register_buffer("w2", torch.randn(1, 6, 3, 3, generator=g, dtype=torch.float64) * 0.4)

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        s = sigma.to(x.dtype).view(-1, 1, 1, 1)
        h = torch.tanh(nn.functional.conv2d(x - 0.5, self.w1, padding=1) * (1 + s))
        return (nn.functional.conv2d(h, self.w2, padding=1) - (x - 0.5)) / s


def with_score_model(d: Any, model: nn.Module) -> Any:
    d.score_model = model
    d._scorer.model = model
    return d


def _directional_check(d: Any, x: Tensor, rng_tag: str | None, h: float) -> tuple[float, float, float]:
    """(autograd directional derivative, central finite difference, identity-gradient prediction)."""
    w = torch.randn(x.shape, generator=generator(11), dtype=x.dtype)
    v = torch.randn(x.shape, generator=generator(12), dtype=x.dtype)

    def f(z: Tensor) -> Tensor:
        rng = rng_for(x.shape[0], rng_tag) if rng_tag else None
        return (d.purify(z, rng=rng) * w).sum()

    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(xg), xg)
    with torch.no_grad():
        fd = (f(x + h * v) - f(x - h * v)) / (2 * h)
    return float((g * v).sum()), float(fd), float((w * v).sum())


@pytest.mark.parametrize(
    "name,params,tag",
    [
        ("pursamere", {"eps_pur": 0.3, "levels": 3, "steps_per_level": 2, "n_mc": 3}, None),
        ("pursamere", {"eps_pur": 0.3, "levels": 3, "steps_per_level": 2, "n_mc": 3, "sam": False}, None),
        (
            "pursamere",
            {"eps_pur": 0.05, "norm": "l2", "lr_max": 0.02, "levels": 3, "steps_per_level": 2, "n_mc": 3},
            None,
        ),
        (
            "pursamere",
            {"eps_pur": 0.3, "norm": "l1", "lr_max": 0.02, "levels": 3, "steps_per_level": 2, "n_mc": 3},
            None,
        ),
        ("scoreopt", {"loss": "sr", "variant": "n", "lr": 0.05, "steps": 3}, "fd"),
        ("scoreopt", {"loss": "mse", "variant": "o", "lr": 0.05, "steps": 3}, "fd"),
        ("adp", {"noise_std": 0.1, "sigma_end": 0.05, "steps": 3}, "fd"),
    ],
    ids=str,
)
@pytest.mark.parametrize("checkpoint", [True, False], ids=["checkpointed", "full-graph"])
def test_full_gradient_matches_finite_differences(
    ctx: BuildContext, x_test: Tensor, name: str, params: dict[str, Any], tag: str | None, checkpoint: bool
) -> None:
    d = build(name, ctx, **params)
    with_score_model(d, SmoothScore(d.score_model.sigmas))
    # mid-grey images keep every iterate away from the [0, 1] clip, so the map is smooth there
    x = (0.3 + 0.4 * x_test[:2]).double()
    d.grad_checkpointing(checkpoint)
    auto, fd, identity = _directional_check(d, x, tag, h=1e-6)
    assert auto != 0.0
    assert abs(auto - fd) <= 1e-3 * abs(fd) + 1e-6, (auto, fd)
    # and the gradient is not the straight-through (identity) one: the purifier's Jacobian counts
    assert abs(fd - identity) > 0.01 * abs(fd), (auto, fd, identity)


@pytest.mark.parametrize("norm,eps", [("linf", 0.05), ("l2", 0.3), ("l1", 1.5), ("l2", 50.0), ("l1", 500.0)])
def test_projection_derivative_matches_finite_differences(norm: str, eps: float) -> None:
    from robbench.core.threat import project
    from robbench.defenses.score_common import project_ball

    g = generator(31)
    x0 = torch.rand((3, 1, 8, 8), generator=g, dtype=torch.float64)
    x = x0 + 0.3 * torch.randn(x0.shape, generator=g, dtype=torch.float64)  # some coordinates leave [0, 1]
    w, vx, v0 = (torch.randn(x0.shape, generator=g, dtype=torch.float64) for _ in range(3))
    xg, x0g = x.clone().requires_grad_(True), x0.clone().requires_grad_(True)
    out = project_ball(xg, x0g, norm, eps)
    assert torch.equal(out.detach(), project(x, x0, norm, eps))  # forward values untouched
    gx, g0 = torch.autograd.grad((out * w).sum(), (xg, x0g))
    h = 1e-7

    def f(a: Tensor, b: Tensor) -> float:
        return float((project(a, b, norm, eps) * w).sum())

    fd = (f(x + h * vx, x0 + h * v0) - f(x - h * vx, x0 - h * v0)) / (2 * h)
    auto = float((gx * vx).sum() + (g0 * v0).sum())
    assert abs(auto - fd) <= 1e-5 * max(1.0, abs(fd)), (auto, fd)


def test_checkpointed_and_full_graph_gradients_agree(ctx: BuildContext, x_test: Tensor) -> None:
    d = build("pursamere", ctx, steps_per_level=2)
    x = x_test[:3]
    w = torch.randn(x.shape, generator=generator(3))
    grads, outs = [], []
    for ckpt in (True, False):
        d.grad_checkpointing(ckpt)
        xg = x.clone().requires_grad_(True)
        out = d.purify(xg)
        (g,) = torch.autograd.grad((out * w).sum(), xg)
        grads.append(g)
        outs.append(out.detach())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-3, atol=1e-4)
    assert grads[0].abs().sum() > 0
    # the checkpointed forward is bit-identical to the no-grad purification used for judging
    assert torch.equal(outs[0], d.purify(x))


def test_full_mode_target_gives_nonzero_gradients(ctx: BuildContext, x_test: Tensor, digits: Any) -> None:
    y = digits.load("test").y[:4]
    for name in DEFENSES:
        d = build(name, ctx)
        rng = rng_for(4, "target") if d.stochastic else None
        t = Target(d, gradient="full", randomness="det", rng=rng)
        _loss, grad, logits = t.loss_grad(x_test[:4], y)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name
        assert logits.shape == (4, 10)


# ---- validation before any compute ----------------------------------------------------------------
BAD = [
    ("pursamere", {"eps_pur": 0}, "eps_pur"),
    ("pursamere", {"eps_pur": -0.1}, "eps_pur"),
    ("pursamere", {"eps_pur": "8/0"}, "eps_pur"),
    ("pursamere", {"eps_pur": 0.1, "rho": 0.2}, "rho"),
    ("pursamere", {"n_mc": 0}, "n_mc"),
    ("pursamere", {"levels": 50}, "levels"),
    ("pursamere", {"levels": [0, 12]}, "levels"),
    ("pursamere", {"levels": 0}, "levels"),
    ("pursamere", {"lr_max": 0.001, "lr_min": 0.01}, "lr_min"),
    ("pursamere", {"levels": None, "sigma_range": [5.0, 0.02]}, "sigma_range"),
    ("pursamere", {"levels": None, "sigma_range": [0.15, 0.001]}, "sigma_range"),
    ("pursamere", {"levels": None, "sigma_range": [0.015, 0.012]}, "sigma_range"),
    ("pursamere", {"levels": None, "sigma_range": [0.01, 0.1]}, "sigma_range"),
    ("pursamere", {"levels": 2, "sigma_range": [0.1, 0.02]}, "levels or sigma_range"),
    ("pursamere", {"score_model": "digits-cnn"}, "score_model"),
    ("pursamere", {"score_model": "no-such-model"}, "no-such-model"),
    ("scoreopt", {"sigma_max": 5.0}, "sigma_max"),
    ("scoreopt", {"sigma_min": 0.001}, "sigma_min"),
    ("scoreopt", {"sigma_min": 0.3, "sigma_max": 0.2}, "sigma_min"),
    ("scoreopt", {"loss": "l1"}, "loss"),
    ("adp", {"noise_std": 0}, "noise_std"),
    ("adp", {"sigma_end": 0.001}, "sigma_start/sigma_end"),
    ("adp", {"noise_std": 2.0}, "sigma_start/sigma_end"),
]


@pytest.mark.parametrize("name,bad,field", BAD, ids=str)
def test_bad_parameters_fail_validation_before_compute(
    tmp_path: Path, write_suite, monkeypatch: pytest.MonkeyPatch, name: str, bad: dict[str, Any], field: str
) -> None:  # type: ignore[no-untyped-def]
    from robbench.run.validate import check_suite
    from robbench.suite.load import parse_suite

    # an empty zoo: validation must not train (or even load) a score model
    empty = tmp_path / "zoo"
    monkeypatch.setenv("ROBBENCH_ZOO_DIR", str(empty))
    params = dict(registry.defenses.get(name).example_params, **bad)
    suite = base_suite(defenses=[{"name": name, "params": params}])
    import yaml

    with pytest.raises(Exception) as info:
        check_suite(parse_suite(yaml.safe_dump(suite)))
    assert field in str(info.value), str(info.value)
    assert not empty.exists() or not any(empty.iterdir())


def test_validate_cli_names_the_field_and_exits_2(write_suite, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    params = dict(registry.defenses.get("pursamere").example_params, eps_pur=0.05, rho=0.1)
    path = write_suite(base_suite(defenses=[{"name": "pursamere", "params": params}]))
    env = dict(os.environ, ROBBENCH_ZOO_DIR=str(tmp_path / "empty-zoo"))
    res = subprocess.run(
        [sys.executable, "-m", "robbench.cli", "validate", str(path)], capture_output=True, text=True, env=env
    )
    assert res.returncode == 2, res.stderr
    assert "rho" in res.stderr and "eps_pur" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "empty-zoo").exists()


def test_good_example_params_validate(write_suite) -> None:  # type: ignore[no-untyped-def]
    from robbench.api import validate

    suite = base_suite(defenses=[{"name": n, "params": registry.defenses.get(n).example_params} for n in DEFENSES])
    validate(write_suite(suite))


def test_uncovered_levels_detected_at_build_time_too(ctx: BuildContext) -> None:
    cls = registry.defenses.get("pursamere")
    params = parse_params(cls.Params, dict(cls.example_params, levels=99), "pursamere")
    with pytest.raises(SuiteError, match="levels"):
        cls(params, ctx)


# ---- through the runner ----------------------------------------------------------------------------
def test_runner_rows_do_not_depend_on_batch_size(write_suite, tmp_path: Path, zoo_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from robbench.api import run, table
    from robbench.results.store import ResultsDir

    suite = base_suite(
        data={"dataset": "digits", "split": "test", "n_samples": 6},
        defenses=[{"name": n, "params": registry.defenses.get(n).example_params} for n in DEFENSES],
        attacks=[
            {"id": "clean", "name": "clean"},
            {"id": "gPGD3", "name": "pgd", "params": {"steps": 3}, "gradient": "classifier"},
            {"id": "BPDA2-det", "name": "pgd", "params": {"steps": 2}, "gradient": "bpda", "randomness": "det"},
        ],
        evaluation={"batch_size": 6, "draws": 2, "overrides": ["few-draws"]},
    )
    path = write_suite(suite)
    run(path, out=tmp_path / "a", quiet=True)
    run(path, out=tmp_path / "b", quiet=True, batch_size=4)
    # the loss trace comes from the classifier's batched logits, which may differ in the last bits
    # across batch shapes (as in test_runner); predictions and everything else must not
    drop = ["seconds", "peak_mem_mb", "loss_trace"]
    a, b = (
        ResultsDir(tmp_path / k)
        .read_rows()
        .sort_values(["cell", "sample_id"])
        .reset_index(drop=True)
        .drop(columns=drop)
        for k in "ab"
    )
    assert a["error"].isna().all()
    pd.testing.assert_frame_equal(a, b)
    evals = a.groupby("defense")["model_evals"].max()
    assert (evals[DEFENSES] > 0).all()
    summary = table(tmp_path / "a")
    assert set(summary["defense"]) == set(DEFENSES)


# ---- the paper's pattern on digits ---------------------------------------------------------------
def test_pursamere_at_quickstart_settings_moves_noised_digits_closer_to_clean(ctx: BuildContext, digits: Any) -> None:
    """The quickstart's PurSAMERE entry (read from suites/quickstart.yaml) on the zoo's digits-score model:
    Gaussian-noised test images come out closer to the clean ones, every one of them staying in its ball."""
    import yaml

    suite = yaml.safe_load((Path(__file__).resolve().parents[1] / "suites" / "quickstart.yaml").read_text())
    (params,) = [d["params"] for d in suite["defenses"] if d["name"] == "pursamere"]
    assert params["score_model"] == "digits-score"
    d = build("pursamere", ctx, defaults=True, **params)
    x = digits.load("test").x[:64]
    noisy = (x + 0.1 * torch.randn(x.shape, generator=generator(2))).clamp(0, 1)
    out = d.purify(noisy)
    mse_noisy = ((noisy - x) ** 2).flatten(1).mean(1)
    mse_out = ((out - x) ** 2).flatten(1).mean(1)
    # measured: mean MSE 0.00658 -> 0.00572 (-13 %), 51 of 64 images closer (the quickstart's small
    # settings: 1 Monte Carlo draw, 6 levels x 1 Adam step of lr 0.02 -> 0.005: a pixel moves <= ~0.08)
    assert float(mse_out.mean()) < 0.95 * float(mse_noisy.mean()), (float(mse_out.mean()), float(mse_noisy.mean()))
    assert (mse_out < mse_noisy).float().mean() >= 2 / 3  # most images, not an average carried by a few
    assert (norm_of(out - noisy, "linf") <= params["eps_pur"] + 1e-6).all()


# ---- the paper's pattern on digits (slow: trains digits-score on first use) --------------------------
@pytest.mark.slow
def test_pursamere_on_digits_denoises_keeps_clean_accuracy_and_resists_graybox_pgd(
    digits: Any, zoo_dir: Path, digits_classifier: nn.Module
) -> None:
    from robbench.attacks.pgd import PGD
    from robbench.core.threat import ThreatModel
    from robbench.defenses.none import NoDefense

    ctx = BuildContext(dataset=digits, device=torch.device("cpu"), classifier=digits_classifier, zoo_dir=str(zoo_dir))
    test = digits.load("test")
    n = 200
    x, y = test.x[:n], test.y[:n]
    eps = 0.1
    d = build("pursamere", ctx, defaults=True, score_model="digits-score", eps_pur=eps)

    def acc(z: Tensor) -> float:
        with torch.no_grad():
            return float((digits_classifier(z).argmax(1) == y).float().mean())

    # 1) Gaussian-noised images move closer to the clean ones
    noisy = (x + 0.1 * torch.randn(x.shape, generator=generator(1))).clamp(0, 1)
    mse_noisy, mse_purified = float(((noisy - x) ** 2).mean()), float(((d.purify(noisy) - x) ** 2).mean())
    # 2) clean accuracy within 2 points of the undefended classifier at eps_pur = the budget
    clean, clean_purified = acc(x), acc(d.purify(x))
    # 3) gray-box PGD20 (gradient: classifier) robust accuracy clearly above the undefended one
    nd = NoDefense(parse_params(NoDefense.Params, {}, "none"), ctx)
    attack = PGD(parse_params(PGD.Params, {"steps": 20}, "pgd"))
    x_adv = attack.run(Target(nd, gradient="classifier"), x, y, ThreatModel("linf", eps), rng=rng_for(n, "pgd"))
    undefended, defended = acc(x_adv), acc(d.purify(x_adv))
    print(
        f"\ndigits, {n} test images, PurSAMERE defaults, eps_pur = Linf {eps}: noisy MSE {mse_noisy:.5f} -> "
        f"{mse_purified:.5f}; clean accuracy {clean:.3f} -> {clean_purified:.3f}; gPGD20 Linf {eps}: "
        f"undefended {undefended:.3f}, PurSAMERE {defended:.3f}"
    )
    assert mse_purified < mse_noisy
    assert clean_purified >= clean - 0.02
    assert defended >= undefended + 0.2, (undefended, defended)
