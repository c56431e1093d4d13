"""APGD, native: Auto-PGD with robbench's :class:`Target` (every gradient mode, EoT, per-sample seeds)."""

from __future__ import annotations

import math
from typing import Literal, cast

import torch
from pydantic import Field
from torch import Tensor

from robbench.attacks.base import Attack
from robbench.attacks.pgd import _Keeper, movable_coordinates, random_start, sparse_sign_step, steepest_step
from robbench.attacks.target import LOSSES, LossFn, Target
from robbench.core.components import BuildContext, Params, ParamsModel
from robbench.core.seeding import SampleRNG
from robbench.core.threat import ThreatModel
from robbench.errors import SuiteError


class APGDParams(Params):
    #: gradient steps per restart (the paper: 100)
    steps: int = Field(default=100, ge=1, le=100_000)
    restarts: int = Field(default=1, ge=1, le=1000)
    #: ``ce`` (cross-entropy) or ``dlr`` (difference of logits ratio; needs 3 or more classes)
    loss: Literal["ce", "dlr"] = "ce"
    #: the fraction of steps that must raise the loss between checkpoints for the step size to stay
    rho: float = Field(default=0.75, gt=0.0, le=1.0)
    #: weight of the new step against the previous one (the paper's alpha)
    momentum: float = Field(default=0.75, ge=0.0, le=1.0)
    #: 0: untargeted; N > 0: APGD-T, the targeted DLR loss toward each of the N classes the clean input ranks
    #: highest after its true one (``restarts`` runs per target; AutoAttack: 9 targets, 1 run each)
    targets: int = Field(default=0, ge=0, le=1000)


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Difference of logits ratio (Croce & Hein 2020): scale-invariant margin, per sample (B,)."""
    srt = logits.sort(dim=1).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], -math.inf).amax(1)
    return -(z_y - others) / (srt[:, -1] - srt[:, -3] + 1e-12)


def targeted_dlr_loss(t: Tensor) -> LossFn:
    """Targeted DLR toward classes ``t`` (B,) (Croce & Hein 2020, APGD-T), per sample; needs 4+ classes."""

    def loss(logits: Tensor, y: Tensor) -> Tensor:
        reps = logits.shape[0] // t.shape[0]  # EoT-batched forwards repeat the batch
        tt = t.repeat(reps)
        srt = logits.sort(dim=1).values
        z_y, z_t = logits.gather(1, y[:, None]).squeeze(1), logits.gather(1, tt[:, None]).squeeze(1)
        return -(z_y - z_t) / (srt[:, -1] - (srt[:, -3] + srt[:, -4]) / 2 + 1e-12)

    return loss


def checkpoints(steps: int) -> set[int]:
    """The steps at which APGD may halve its step size: p_0 = 0, p_1 = 0.22, p_{j+1} = p_j +
    max(p_j - p_{j-1} - 0.03, 0.06), times ``steps``, rounded up."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return {math.ceil(q * steps - 1e-9) for q in p[1:] if q <= 1}


def _evaluate(
    target: Target, x_k: Tensor, y: Tensor, loss_fn: LossFn, kept: _Keeper, trace: list[Tensor], judged: bool
) -> tuple[Tensor, Tensor]:
    """Loss and gradient at ``x_k``; the loss traced and the iterate offered to ``kept`` (wrong only where the
    attack's forward is the judge's)."""
    loss, grad, logits = target.loss_grad(x_k, y, loss_fn)
    trace.append(loss)
    wrong = (logits.argmax(1) != y) if judged else torch.zeros_like(y, dtype=torch.bool)
    kept.offer(x_k, loss, wrong)
    return loss, grad


class APGD(Attack):
    """APGD (Auto-PGD), robbench's own implementation on the :class:`Target`.

    Papers: Croce, Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
    parameter-free attacks", ICML 2020, Algorithm 1 (Linf, L2); Croce, Hein, "Mind the box: l1-APGD for
    sparse adversarial attacks on image classifiers", ICML 2021 (L1). Threat norms: linf, l2, l1.

    Parameters: ``steps`` (100), ``restarts`` (1), ``loss`` (ce | dlr), ``rho`` (0.75), ``momentum``
    (0.75), ``targets`` (0; N > 0 makes it APGD-T with the targeted DLR loss, ``loss: dlr`` required).

    APGD-T: the target classes are the N highest-ranked wrong classes of one forward of the clean input
    (on a randomised defense, of the attacker's own draw); each gets ``restarts`` runs, and every run
    offers its iterates to the same per-point choice below (the targeted DLR losses of different targets
    are compared as they are: each is a scale-free margin toward its target).

    Choices: it runs on the cell's gradient mode and EoT like PGD (batched over samples, each with its
    own random start from its own stream: rows do not depend on the batch size), unlike pyautoattack's
    APGD, which draws one seed per call. Step size 2 eps, halved at the paper's checkpoints when fewer
    than ``rho`` of the steps since the last one raised the loss, or when neither the step size nor the
    best loss changed; the iterate then restarts from the best point, without momentum. It returns, where
    the attack's forward is the judge's, the first iterate that forward gets wrong, else the highest-loss
    one; elsewhere (fresh draws, gray-box, transfer, custom) the best-loss iterate of every point, by the
    attack's own (EoT-averaged) loss: no single forward's "success" decides.

    L1 (l1-APGD): each step moves the ``k`` coordinates of largest |gradient| by sign / k times the step
    size (a unit-L1 sparse step), then projects exactly onto the L1 ball intersected with [0, 1]; no
    momentum. Step size eps, ``k`` a fifth of the coordinates at first. Every 4% of the steps (at least 1)
    ``k`` becomes the number of coordinates the best point perturbs, over 1.5; when that number fell by 5%
    or more the step size resets to eps and the iterate restarts from the best point, else the step size
    shrinks by 1.5 (not below eps / 10). Where the paper's code is looser robbench is stricter: only
    coordinates that can move in their gradient's direction inside the box are counted and chosen, so no
    part of a step is lost to the box. ``rho`` and ``momentum`` do not apply on L1.
    """

    Params = APGDParams
    norms = frozenset({"linf", "l2", "l1"})
    example_params = {"steps": 5}

    @classmethod
    def effort(cls, params: ParamsModel) -> tuple[str, int] | None:
        return ("steps", cast(APGDParams, params).steps)

    @classmethod
    def check_params(cls, params: ParamsModel, ctx: BuildContext | None) -> None:
        p = cast(APGDParams, params)
        if p.targets and p.loss != "dlr":
            raise SuiteError(
                "params.targets: APGD-T ascends the targeted DLR loss, not cross-entropy", hint="add loss: dlr"
            )
        if ctx is not None and p.loss == "dlr" and ctx.dataset.num_classes < 3:
            raise SuiteError(
                f"params.loss: the DLR loss needs at least 3 classes; {ctx.dataset.name} has {ctx.dataset.num_classes}",
                hint="use loss: ce",
            )
        k = ctx.dataset.num_classes if ctx is not None else None
        if k is not None and p.targets and (k < 4 or p.targets > k - 1):
            raise SuiteError(
                f"params.targets: {p.targets} target classes, but {ctx.dataset.name if ctx else ''} has {k} classes "
                "(APGD-T needs 4 or more, and at most one target per wrong class)",
                hint=f"use targets <= {max(k - 1, 0)}, or targets: 0 (untargeted)",
            )

    def run(self, target: Target, x: Tensor, y: Tensor, threat: ThreatModel | None, *, rng: SampleRNG) -> Tensor:
        assert threat is not None
        p = cast(APGDParams, self.params)
        losses: list[LossFn] = [dlr_loss if p.loss == "dlr" else LOSSES["ce"]]
        if p.targets:
            with torch.no_grad():
                ranked = target.logits(x).scatter(1, y[:, None], -math.inf).argsort(dim=1, descending=True)
            losses = [targeted_dlr_loss(ranked[:, j]) for j in range(p.targets)]
        judged = target.judged_forward
        kept = _Keeper(x)
        trace: list[Tensor] = []
        for loss_fn in losses:
            for _ in range(p.restarts):
                if threat.norm == "l1":  # the paper's start: unit Gaussian noise projected, sparse at small eps
                    x0 = threat.project(x + rng.randn(*x.shape[1:]).to(x.device), x)
                    self._restart_l1(target, x, y, threat, x0, loss_fn, kept, trace, judged)
                else:
                    self._restart(target, x, y, threat, random_start(x, threat, rng), loss_fn, kept, trace, judged)
        self.last_trace = torch.stack(trace).detach() if trace else None
        return kept.best.detach()

    def _restart(
        self,
        target: Target,
        x: Tensor,
        y: Tensor,
        threat: ThreatModel,
        x_k: Tensor,
        loss_fn: LossFn,
        kept: _Keeper,
        trace: list[Tensor],
        judged: bool,
    ) -> None:
        p = cast(APGDParams, self.params)
        b, shape = x.shape[0], [-1, *[1] * (x.ndim - 1)]
        eta = torch.full((b,), 2 * threat.eps, device=x.device)
        cps, last_cp, rises = checkpoints(p.steps), 0, torch.zeros(b, device=x.device)
        x_prev = x_k
        x_best, f_best = x_k, torch.full((b,), -math.inf, device=x.device)
        eta_cp, f_cp, f_prev = eta.clone(), f_best.clone(), f_best.clone()
        for k in range(p.steps + 1):
            loss, grad = _evaluate(target, x_k, y, loss_fn, kept, trace, judged)
            better = loss > f_best
            x_best, f_best = torch.where(better.view(shape), x_k, x_best), torch.where(better, loss, f_best)
            rises += (loss > f_prev).float() if k > 0 else 0.0
            f_prev = loss
            if k == p.steps:
                break
            z = threat.project(x_k + eta.view(shape) * steepest_step(grad, threat.norm, 0.0), x)
            a = p.momentum if k > 0 else 1.0
            x_new = threat.project(x_k + a * (z - x_k) + (1 - a) * (x_k - x_prev), x)
            x_prev, x_k = x_k, x_new
            if k + 1 in cps:
                reduce = (rises < p.rho * (k + 1 - last_cp)) | ((eta == eta_cp) & (f_best == f_cp))
                eta = torch.where(reduce, eta / 2, eta)
                x_k = torch.where(reduce.view(shape), x_best, x_k)
                x_prev = torch.where(reduce.view(shape), x_k, x_prev)
                last_cp, rises, eta_cp, f_cp = k + 1, torch.zeros_like(rises), eta.clone(), f_best.clone()

    def _restart_l1(
        self,
        target: Target,
        x: Tensor,
        y: Tensor,
        threat: ThreatModel,
        x_k: Tensor,
        loss_fn: LossFn,
        kept: _Keeper,
        trace: list[Tensor],
        judged: bool,
    ) -> None:
        """One l1-APGD run (see the class docstring)."""
        steps = cast(APGDParams, self.params).steps
        b, shape, d = x.shape[0], [-1, *[1] * (x.ndim - 1)], x[0].numel()
        eta = torch.full((b,), threat.eps, device=x.device)
        k_frac, sp_old = torch.full((b,), 0.2, device=x.device), torch.full((b,), float(d), device=x.device)
        period = max(int(0.04 * steps), 1)
        x_best, g_best, f_best = x_k, torch.zeros_like(x), torch.full((b,), -math.inf, device=x.device)
        for k in range(steps + 1):
            loss, grad = _evaluate(target, x_k, y, loss_fn, kept, trace, judged)
            better = loss > f_best
            x_best, g_best = torch.where(better.view(shape), x_k, x_best), torch.where(better.view(shape), grad, g_best)
            f_best = torch.where(better, loss, f_best)
            if k == steps:
                break
            if k > 0 and k % period == 0:  # after the evaluation of the last step, as the paper
                sp = (x_best - x).flatten(1).ne(0).sum(1).float()
                fell = sp / sp_old < 0.95
                k_frac = (sp / d / 1.5).clamp_min(1.0 / d)
                eta = torch.where(fell, threat.eps, eta / 1.5).clamp(threat.eps / 10, threat.eps)
                sp_old = sp.clamp_min(1.0)
                x_k, grad = torch.where(fell.view(shape), x_best, x_k), torch.where(fell.view(shape), g_best, grad)
            g, at = grad.flatten(1), x_k.flatten(1)
            step = sparse_sign_step(g, (k_frac * d).ceil(), movable_coordinates(g, at)).view(x.shape)
            x_k = threat.project(x_k + eta.view(shape) * step, x)
