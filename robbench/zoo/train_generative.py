"""Zoo trainers of generative models: denoising score matching (``dsm``) and DDPM (``ddpm``).

Both keep an exponential moving average of the weights and store the EMA weights as the
checkpoint; both are resumable (see :mod:`robbench.zoo.loop`) and draw every random number from
per-step generators derived from the recipe's seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn

from robbench.core.seeding import derive_seed, generator
from robbench.data.base import DataSplit
from robbench.zoo.loop import EMA, Checkpointer, resumed_batches, step_generator
from robbench.zoo.train import trainer

#: noise levels (pixel scale) at which the score model's denoiser is evaluated
EVAL_SIGMAS = (0.05, 0.1, 0.2, 0.5)


def _eval_samples(cfg: dict[str, Any], test: DataSplit) -> int:
    """How many test images (the first ones) the final metrics use: ``eval_samples``, default all."""
    return min(len(test), int(cfg.get("eval_samples", len(test))))


def _optimizer(model: nn.Module, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=float(cfg.get("lr", 2e-3)))


def _lr_at(cfg: dict[str, Any], step: int, steps: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 (closed form, so resumes are exact)."""
    import math

    lr = float(cfg.get("lr", 2e-3))
    warm = int(cfg.get("warmup", 0))
    if warm and step < warm:
        return lr * (step + 1) / warm
    frac = (step - warm) / max(1, steps - warm)
    return lr * 0.5 * (1 + math.cos(math.pi * frac))


def _step(opt: torch.optim.Optimizer, model: nn.Module, loss: Tensor, lr: float, clip: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()


@torch.no_grad()
def denoising_mse(
    model: nn.Module, x: Tensor, sigmas: tuple[float, ...] = EVAL_SIGMAS, seed: int = 0, batch_size: int = 256
) -> dict[str, float]:
    """MSE to the clean images of the Tweedie denoiser and of the noisy input, at each sigma."""
    from robbench.models.generative import ScoreModel, tweedie

    model.eval()
    out: dict[str, float] = {}
    for sigma in sigmas:
        g = generator(derive_seed(seed, "eval-dsm", sigma))
        noise = torch.randn(x.shape, generator=g)
        den = noisy = 0.0
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size]
            xn = xb + sigma * noise[i : i + batch_size]
            den += float(((tweedie(cast(ScoreModel, model), xn, sigma) - xb) ** 2).sum())
            noisy += float(((xn - xb) ** 2).sum())
        n = x.numel()
        out[f"denoise_mse@{sigma:g}"] = den / n
        out[f"noisy_mse@{sigma:g}"] = noisy / n
    return out


@trainer("dsm")
def train_dsm(
    model: nn.Module,
    recipe: Any,
    train: DataSplit,
    test: DataSplit,
    progress: Callable[[int, float], None],
    zoo_dir: Any = None,
    checkpoint_every: int | None = None,
    checkpointer: Checkpointer | None = None,
    **_: Any,
) -> dict[str, Any]:
    """Denoising score matching over the model's sigma ladder (Song & Ermon 2019/2020), with EMA.

    Loss ``mean_i || sigma_i s(x + sigma_i xi, sigma_i) + xi ||^2`` with one level drawn uniformly
    per sample and xi ~ N(0, I) (reported per dimension). Train config: ``steps``, ``batch_size``
    (128), ``lr`` (2e-3, Adam, warm-up then cosine decay), ``warmup`` (0), ``grad_clip`` (1.0),
    ``ema`` (0.999), ``eval_samples`` (all). Metrics: denoising MSE of the EMA model's Tweedie
    denoiser and of the noisy input at the sigmas of :data:`EVAL_SIGMAS`, on the first
    ``eval_samples`` test images.
    """
    cfg = recipe.train
    steps, bs = int(cfg.get("steps", 1000)), int(cfg.get("batch_size", 128))
    clip = float(cfg.get("grad_clip", 1.0))
    sigmas = cast(Tensor, model.sigmas).detach().clone()
    opt = _optimizer(model, cfg)
    ema = EMA(model, float(cfg.get("ema", 0.999)))
    ckpt = checkpointer or Checkpointer(recipe, zoo_dir, steps, checkpoint_every)
    start = ckpt.restore(model, opt, ema=ema)
    model.train()
    for step, idx in resumed_batches(len(train), bs, steps, recipe.seed, start):
        g = step_generator(recipe.seed, "dsm", step)
        x = train.x[idx]
        level = torch.randint(len(sigmas), (x.shape[0],), generator=g)
        sig = sigmas[level]
        xi = torch.randn(x.shape, generator=g)
        s = model(x + sig.view(-1, 1, 1, 1) * xi, sig)
        loss = ((sig.view(-1, 1, 1, 1) * s + xi) ** 2).mean()
        _step(opt, model, loss, _lr_at(cfg, step, steps), clip)
        ema.update(model)
        progress(step + 1, loss.item())
        ckpt.save(step + 1, model, opt, ema=ema)
    ema.copy_to(model)
    model.eval()
    n = _eval_samples(cfg, test)
    return dict(denoising_mse(model, test.x[:n], seed=recipe.seed), eval_samples=n)


@torch.no_grad()
def x0_mse(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    fractions: tuple[float, ...] = (0.1, 0.25, 0.5),
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, float]:
    """Pixel-space MSE to the clean images of the x0 estimate and of the rescaled noisy input.

    At timestep ``t = round(f * T)`` for each fraction ``f``: the noisy input rescaled to the data
    scale is ``x_t / sqrt(abar_t)``; the denoiser is the model's x0 prediction (unconditional, and
    conditioned on the true label when the model is class-conditional).
    """
    from robbench.models.generative import from_diffusion, to_diffusion

    model.eval()
    abar_all = cast(Tensor, model.alphas_cumprod)
    T = abar_all.shape[0]
    out: dict[str, float] = {}
    for f in fractions:
        t_int = min(T - 1, max(0, round(f * T)))
        g = generator(derive_seed(seed, "eval-ddpm", t_int))
        eps = torch.randn(x.shape, generator=g)
        sums = {"noisy": 0.0, "uncond": 0.0, "cond": 0.0}
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size]
            yb = y[i : i + batch_size]
            t = torch.full((xb.shape[0],), t_int, dtype=torch.long)
            abar = abar_all[t].view(-1, 1, 1, 1)
            xt = abar.sqrt() * to_diffusion(xb) + (1 - abar).sqrt() * eps[i : i + batch_size]
            sums["noisy"] += float(((from_diffusion(xt / abar.sqrt()) - xb) ** 2).sum())
            for mode, lab in (("uncond", None), ("cond", yb)):
                if mode == "cond" and not model.class_conditional:
                    continue
                x0 = model.predict_x0(xt, t, lab)  # type: ignore[operator]
                sums[mode] += float(((from_diffusion(x0) - xb) ** 2).sum())
        n = x.numel()
        out[f"noisy_mse@t{t_int}"] = sums["noisy"] / n
        out[f"x0_mse@t{t_int}"] = sums["uncond"] / n
        if model.class_conditional:
            out[f"x0_mse_cond@t{t_int}"] = sums["cond"] / n
    return out


@trainer("ddpm")
def train_ddpm(
    model: nn.Module,
    recipe: Any,
    train: DataSplit,
    test: DataSplit,
    progress: Callable[[int, float], None],
    zoo_dir: Any = None,
    checkpoint_every: int | None = None,
    checkpointer: Checkpointer | None = None,
    **_: Any,
) -> dict[str, Any]:
    """DDPM epsilon-prediction training (Ho et al. 2020) with label dropout and EMA.

    Loss ``|| eps(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t, y) - eps ||^2`` with t uniform over
    the schedule, x0 the image in [-1, 1]; labels are replaced by the null class with probability
    ``p_uncond`` (0.1) so one model serves conditional and unconditional use (classifier-free
    guidance training). Train config: ``steps``, ``batch_size`` (128), ``lr`` (2e-3),
    ``warmup`` (0), ``grad_clip`` (1.0), ``ema`` (0.999), ``p_uncond``, ``eval_samples`` (all).
    Metrics: pixel MSE of the x0 estimate and of the rescaled noisy input at t = 0.1, 0.25 and
    0.5 T (:func:`x0_mse`) on the first ``eval_samples`` test images.
    """
    from robbench.models.generative import to_diffusion

    cfg = recipe.train
    steps, bs = int(cfg.get("steps", 1000)), int(cfg.get("batch_size", 128))
    clip = float(cfg.get("grad_clip", 1.0))
    p_uncond = float(cfg.get("p_uncond", 0.1))
    abar_all = cast(Tensor, model.alphas_cumprod).detach().clone()
    T = abar_all.shape[0]
    null = int(cast(int, model.num_classes))
    opt = _optimizer(model, cfg)
    ema = EMA(model, float(cfg.get("ema", 0.999)))
    ckpt = checkpointer or Checkpointer(recipe, zoo_dir, steps, checkpoint_every)
    start = ckpt.restore(model, opt, ema=ema)
    model.train()
    for step, idx in resumed_batches(len(train), bs, steps, recipe.seed, start):
        g = step_generator(recipe.seed, "ddpm", step)
        x0 = to_diffusion(train.x[idx])
        b = x0.shape[0]
        t = torch.randint(T, (b,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        drop = torch.rand(b, generator=g) < p_uncond
        y = torch.where(drop, torch.full_like(train.y[idx], null), train.y[idx])
        abar = abar_all[t].view(-1, 1, 1, 1)
        xt = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
        loss = ((model(xt, t, y if model.class_conditional else None) - eps) ** 2).mean()
        _step(opt, model, loss, _lr_at(cfg, step, steps), clip)
        ema.update(model)
        progress(step + 1, loss.item())
        ckpt.save(step + 1, model, opt, ema=ema)
    ema.copy_to(model)
    model.eval()
    n = _eval_samples(cfg, test)
    return dict(x0_mse(model, test.x[:n], test.y[:n], seed=recipe.seed), eval_samples=n)
