"""Shared machinery of the score-model purifiers (PurSAMERE, ScoreOpt, ADP).

- :func:`score_ladder` reads a score model's noise ladder for validation without training it.
- :class:`ScoreEval` calls the score network on micro-batches of a *fixed* number of images, so
  each image's score (and its input gradient) is computed by a call of the same shape whatever
  the batch size and the image's position: CPU convolution and GEMM kernels pick different
  algorithms for different batch shapes (a batch of 4 vs 256 differs in the last bits), never for
  different positions within one shape. It also counts the real images it evaluates.
- :func:`run_steps` runs an iterative purifier in one of three ways: without a graph (judging,
  BPDA forwards), with the full graph (``create_graph=True`` inner gradients) or checkpointed per
  iteration (full-gradient attacks; memory bounded by the per-step inputs).
- :class:`Adam` is a per-element Adam (Kingma & Ba 2015) written out so that it is differentiable
  and each sample's update depends on that sample alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any, cast

import torch
from pydantic import BeforeValidator
from torch import Tensor

from robbench.core.components import BuildContext
from robbench.core.refs import ModelRef
from robbench.core.threat import norm_of, parse_eps, project
from robbench.errors import RobbenchError, SuiteError
from robbench.models.generative import ScoreModel

#: relative slack when comparing requested noise levels with a model's ladder
LADDER_RTOL = 1e-4


def parse_positive(v: Any) -> float:
    """A number or a fraction string such as ``"8/255"`` that must be positive and finite."""
    out = parse_eps(v)
    if not (out > 0 and math.isfinite(out)):
        raise ValueError(f"must be a positive finite number, got {v!r}")
    return out


#: a parameter given as a number or a fraction string ("8/255"), positive and finite
PositiveFloat = Annotated[float, BeforeValidator(parse_positive)]
OptionalPositiveFloat = Annotated[float | None, BeforeValidator(lambda v: None if v is None else parse_positive(v))]


def score_ladder(ref: ModelRef, ctx: BuildContext | None) -> Tensor:
    """The descending noise ladder (``sigmas`` buffer) of the score model ``ref``, without training it.

    A zoo model's ladder follows from its recipe's architecture config, so the architecture is
    built (cheap, untrained) instead of loading or training weights. A checkpoint reference is
    loaded (weights only; no training is ever started here).
    """
    from robbench.models import build_model

    if ref.robustbench is not None:
        raise SuiteError(
            f"score_model: RobustBench entry {ref.robustbench.name!r} is a classifier, not a score model",
            hint="give the score model as a zoo name or {arch, checkpoint, format}",
        )
    if ref.zoo is not None:
        from robbench.zoo import get_recipe

        recipe = get_recipe(ref.zoo)
        model = build_model(recipe.arch, **recipe.config)
    elif ctx is not None:
        model = ctx.model(ref, train_missing=False)
    else:
        model = build_model(ref.arch or "", **ref.config)
    sigmas = getattr(model, "sigmas", None)
    if not isinstance(sigmas, Tensor) or sigmas.ndim != 1 or sigmas.numel() == 0:
        name = ref.zoo or ref.arch
        raise SuiteError(
            f"score_model {name!r} is not a score model: it has no 1-D `sigmas` noise ladder",
            hint="name a score model (e.g. digits-score), not a classifier or a diffusion model",
        )
    return sigmas.detach().double().cpu()


def load_score_model(ref: ModelRef, ctx: BuildContext) -> ScoreModel:
    """Load (training a missing zoo model on first use) and check the ScoreModel protocol."""
    model = ctx.model(ref)
    sigmas = getattr(model, "sigmas", None)
    if not isinstance(sigmas, Tensor) or sigmas.ndim != 1:
        raise RobbenchError(
            f"score_model {ref.zoo or ref.arch!r} has no `sigmas` ladder: not a score model",
            hint="name a score model (e.g. digits-score)",
        )
    return cast(ScoreModel, model)  # an nn.Module with a 1-D `sigmas` ladder (checked above)


def check_sigma_range(name: str, field: str, lo: float, hi: float, ladder: Tensor) -> None:
    """SuiteError naming ``field`` unless ``[lo, hi]`` lies within the ladder's ``[min, max]``."""
    top, bottom = float(ladder.max()), float(ladder.min())
    if hi > top * (1 + LADDER_RTOL) or lo < bottom * (1 - LADDER_RTOL):
        raise SuiteError(
            f"{name}: params.{field} asks for noise levels [{lo:g}, {hi:g}] but the score model was trained on "
            f"sigma in [{bottom:g}, {top:g}] ({ladder.numel()} levels)",
            hint=f"choose {field} within [{bottom:g}, {top:g}], or a score model whose ladder covers it",
        )


class ScoreEval:
    """The score network called on fixed-shape micro-batches, counting evaluated images.

    ``score(x, sigma)`` evaluates ``x`` (n, C, H, W) at per-image noise levels ``sigma`` (n,) in
    chunks of exactly ``micro_batch`` images; the last chunk is padded with zeros (its padding is
    discarded and not counted). Every image is thus computed by a call of one shape, so results do
    not depend on the batch size or the image's position in the batch.
    """

    def __init__(self, model: ScoreModel, micro_batch: int, counter: Callable[[int], None]) -> None:
        self.model = model
        self.micro_batch = int(micro_batch)
        self.counter = counter

    def score(self, x: Tensor, sigma: Tensor) -> Tensor:
        n, mb = x.shape[0], self.micro_batch
        if n == 0:
            return torch.zeros_like(x)
        outs = []
        for start in range(0, n, mb):
            xc, sc = x[start : start + mb], sigma[start : start + mb]
            k = xc.shape[0]
            if k < mb:
                xc = torch.cat([xc, xc.new_zeros((mb - k, *xc.shape[1:]))])
                sc = torch.cat([sc, sc.new_ones(mb - k)])
            outs.append(self.model(xc, sc)[:k])
        self.counter(n)
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def denoise(self, x: Tensor, sigma: Tensor) -> Tensor:
        """Tweedie's MMSE denoiser ``x + sigma^2 s(x, sigma)`` (per-image ``sigma``)."""
        s = sigma.view(-1, *[1] * (x.ndim - 1))
        return x + s * s * self.score(x, sigma)


class Adam:
    """Per-element Adam: ``m, v`` moments and bias correction with a global step counter ``t``.

    ``step`` is pure (returns the new ``x, m, v``), so it can sit in an autograd graph. The
    denominator is ``sqrt(v_hat) + eps`` with ``v_hat`` floored at 1e-30 before the square root,
    which changes no forward value of consequence (1e-15 against eps = 1e-8) but keeps the
    derivative of the square root finite where a gradient coordinate is exactly zero.
    """

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def step(self, x: Tensor, m: Tensor, v: Tensor, g: Tensor, lr: float, t: int) -> tuple[Tensor, Tensor, Tensor]:
        b1, b2 = self.beta1, self.beta2
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * (g * g)
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        return x - lr * m_hat / (v_hat.clamp_min(1e-30).sqrt() + self.eps), m, v


def project_ball(x: Tensor, x0: Tensor, norm: str, eps: float) -> Tensor:
    """:func:`robbench.core.threat.project` (ball ∩ [0,1]) with its exact derivative for L2 and L1 too.

    The projection's values always come from :func:`~robbench.core.threat.project`. Its L2/L1 branch finds
    the Lagrange multiplier by bisection, whose autograd derivative is not the multiplier's true
    derivative; when a graph is wanted, the result is rebuilt from the active sets of that
    projection with the multiplier in closed form, and only the rebuilt version's derivative is
    used (its forward values are discarded), so differentiated purifiers get the exact Jacobian
    (almost everywhere) while the forward values stay bit-identical to the no-grad path.
    """
    out = project(x, x0, norm, eps)
    if norm == "linf" or not torch.is_grad_enabled() or not (x.requires_grad or x0.requires_grad):
        return out
    shape = x.shape
    c = x0.reshape(shape[0], -1)
    d = x.reshape(shape[0], -1) - c
    o = out.detach().reshape(shape[0], -1)
    at_box = (o == 0) | (o == 1)
    z_box = o - c  # the clipped coordinates' values, as functions of x0
    if norm == "l2":
        free = ~at_box
        rest = eps * eps - (z_box * at_box).square().sum(1, keepdim=True)
        d_free = d * free
        scale = rest.clamp_min(1e-30).sqrt() / d_free.norm(dim=1, keepdim=True).clamp_min(1e-30)
        z = torch.where(free, d_free * scale, z_box)
    else:
        zero = (o == x0.detach().reshape(shape[0], -1)) | (d == 0)
        clipped = at_box & ~zero
        free = ~(zero | clipped)
        n_free = free.sum(1, keepdim=True).clamp_min(1)
        lam = ((d.abs() * free).sum(1, keepdim=True) + (z_box.abs() * clipped).sum(1, keepdim=True) - eps) / n_free
        z = torch.where(free, d - lam * torch.sign(d), torch.where(clipped, z_box, torch.zeros_like(d)))
    # inside the ball (only the box active): the clamp itself
    inside = (norm_of(torch.clamp(x, 0, 1).detach() - x0.detach(), norm) <= eps).view(-1, 1)
    z = torch.where(inside, torch.minimum(torch.maximum(d, -c), 1 - c), z)
    rebuilt = (c + z).reshape(shape)
    return out.detach() + (rebuilt - rebuilt.detach())


def input_grad(fn: Callable[[Tensor], Tensor], x: Tensor, create_graph: bool) -> Tensor:
    """Gradient of ``fn(x).sum()`` w.r.t. ``x`` (per-sample losses, so per-sample gradients).

    With ``create_graph`` the result stays differentiable w.r.t. whatever ``x`` depends on;
    otherwise ``x`` is detached and the result carries no graph.
    """
    graph = create_graph and x.requires_grad
    with torch.enable_grad():
        if not graph:
            x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(x).sum(), x, create_graph=graph)
    return g if graph else g.detach()


#: a step: (state tensors, step constants, create_graph) -> new state tensors
StepFn = Callable[[Sequence[Tensor], Sequence[Tensor], bool], tuple[Tensor, ...]]


class _CheckpointedStep(torch.autograd.Function):
    """One iteration whose graph is not kept: its inputs are saved, and ``backward`` re-runs it
    with ``create_graph=True`` and differentiates the recomputation (reentrant checkpointing that
    also works with inner ``torch.autograd.grad`` calls)."""

    @staticmethod
    def forward(ctx: Any, fn: StepFn, n_state: int, *tensors: Tensor) -> tuple[Tensor, ...]:
        ctx.fn, ctx.n_state = fn, n_state
        ctx.save_for_backward(*tensors)
        state, consts = tensors[:n_state], tensors[n_state:]
        out = fn([s.detach() for s in state], [c.detach() for c in consts], False)
        return tuple(o.detach() for o in out)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor | None, ...]:
        tensors = ctx.saved_tensors
        needs = ctx.needs_input_grad[2:]
        inputs = [t.detach().requires_grad_(bool(n)) for t, n in zip(tensors, needs)]
        with torch.enable_grad():
            out = ctx.fn(inputs[: ctx.n_state], inputs[ctx.n_state :], True)
        wanted = [i for i, n in enumerate(needs) if n]
        pairs = [(o, g) for o, g in zip(out, grads) if o.requires_grad]
        result: list[Tensor | None] = [None] * len(inputs)
        if wanted and pairs:
            got = torch.autograd.grad(
                [o for o, _ in pairs], [inputs[i] for i in wanted], [g for _, g in pairs], allow_unused=True
            )
            for i, g in zip(wanted, got):
                result[i] = g
        return (None, None, *result)


def run_steps(
    fn: StepFn,
    state: Sequence[Tensor],
    consts_per_step: Sequence[Sequence[Tensor]],
    *,
    differentiable: bool,
    checkpoint: bool,
) -> tuple[Tensor, ...]:
    """Apply ``fn`` once per entry of ``consts_per_step``, threading ``state`` through.

    ``differentiable`` False: no graph is built (inner gradients are taken on detached copies).
    True: the result is differentiable w.r.t. the inputs (inner gradients with ``create_graph``),
    checkpointed per step when ``checkpoint`` is set.
    """
    cur = tuple(state)
    for consts in consts_per_step:
        if not differentiable:
            cur = tuple(t.detach() for t in fn([s.detach() for s in cur], [c.detach() for c in consts], False))
        elif checkpoint:
            cur = _CheckpointedStep.apply(fn, len(cur), *cur, *consts)  # type: ignore[no-untyped-call]
        else:
            cur = tuple(fn(list(cur), list(consts), True))
    return cur


def wants_graph(x: Tensor) -> bool:
    """True when the caller differentiates through the purifier (full-gradient attacks)."""
    return bool(x.requires_grad and torch.is_grad_enabled())
