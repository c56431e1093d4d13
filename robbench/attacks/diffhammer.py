"""DiffHammer's selective attack on stochastic purifiers."""

from __future__ import annotations

from typing import cast

import torch
from pydantic import Field
from torch import Tensor

from robbench.attacks.base import Attack
from robbench.attacks.pgd import _Keeper, random_start, steepest_step
from robbench.attacks.target import LOSSES, Target
from robbench.core.components import Params, ParamsModel
from robbench.core.seeding import SampleRNG
from robbench.core.threat import ThreatModel


class DiffHammerParams(Params):
    steps: int = Field(default=20, ge=1, le=100_000)
    #: purification draws per step (the attack's own EoT; the suite's ``eot:`` does not apply)
    draws: int = Field(default=8, ge=1, le=10_000)
    #: temperature of the E-step: the weight of a draw is softmax(loss / temperature) over the draws
    temperature: float = Field(default=1.0, gt=0.0, le=1e6)
    #: step size; default 2.5 * eps / steps
    step_size: float | None = Field(default=None, gt=0.0)
    restarts: int = Field(default=1, ge=1, le=1000)
    #: gradient grafting: one backward through the purifier per step instead of one per draw (see below)
    graft: bool = False

    identity_if_set = frozenset({"graft"})


class DiffHammer(Attack):
    """DiffHammer's selective attack: the gradient concentrated on the purifications that can be broken.

    Paper: Wang et al., "DiffHammer: Rethinking the Robustness of Diffusion-Based Adversarial
    Purification", NeurIPS 2024. Threat norms: linf, l2, l1.

    Parameters: ``steps`` (20), ``draws`` (8) purification draws per step, ``temperature`` (1.0),
    ``step_size`` (2.5 eps / steps), ``restarts`` (1), ``graft`` (false).

    A stochastic purifier judged over N draws (robbench's worst-of-m judging is the paper's
    N-evaluation) is broken when *one* draw is fooled, but EoT averages the gradient over every draw,
    including those that cannot be broken. The selective attack alternates an E-step, which weights
    each of ``draws`` fresh purifications by how close it is to being broken (softmax of its loss over
    the draws, detached), and an M-step, a PGD step along the weighted gradient. Choices where the paper
    is silent or that robbench makes: the weights are a softmax of the cross-entropy (the paper's EM
    uses the success likelihood of each purification); by default every draw is differentiated through the
    cell's gradient mode. ``graft: true`` is the paper's gradient grafting: each draw's gradient is taken at
    its purified image through the classifier alone, the weighted sum is carried back through one
    purification (the step's first draw) instead of all of them: one backward through the purifier per
    step, exact when the purifier's Jacobian does not depend on the draw (additive noise), an
    approximation elsewhere. It applies where the purifier and the classifier can be differentiated apart
    (full gradient, a purifier, the suite's classifier); elsewhere the attack runs as without it. The
    iterate returned per
    point is the one at which the attacker's own draws were most often fooled (ties: the higher mean
    loss), never a judge draw. On a deterministic target, or with ``randomness: det``, every draw is the
    same and the attack is PGD.
    """

    Params = DiffHammerParams
    norms = frozenset({"linf", "l2", "l1"})
    supports_eot = False
    example_params = {"steps": 3, "draws": 2}

    @classmethod
    def effort(cls, params: ParamsModel) -> tuple[str, int] | None:
        return ("steps", cast(DiffHammerParams, params).steps)

    @classmethod
    def own_eot(cls, params: ParamsModel) -> int:
        return cast(DiffHammerParams, params).draws

    def _selective_grad(self, target: Target, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(weighted gradient, fraction of draws fooled, mean loss) at ``x``; one forward+backward per draw."""
        p = cast(DiffHammerParams, self.params)
        k = p.draws if (target.stochastic and target.randomness != "det") else 1
        xg = x.detach().clone().requires_grad_(True)
        losses, fooled = [], []
        for _ in range(k):
            logits = target.logits(xg)  # a fresh purification per call
            losses.append(LOSSES["ce"](logits, y))
            fooled.append((logits.argmax(1) != y).float())
        stacked = torch.stack(losses)  # (k, B)
        weights = torch.softmax(stacked.detach() / p.temperature, dim=0)
        (grad,) = torch.autograd.grad((weights * stacked).sum(), xg)
        target.backwards += k
        return grad, torch.stack(fooled).mean(0), stacked.detach().mean(0)

    def _grafted_grad(self, target: Target, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """As :meth:`_selective_grad`, the weighted gradient carried back through one purification."""
        p = cast(DiffHammerParams, self.params)
        k = p.draws if (target.stochastic and target.randomness != "det") else 1
        xg = x.detach().clone().requires_grad_(True)
        anchor = target.purify(xg)  # the first draw, with its graph
        losses, fooled, grads = [], [], []
        for i in range(k):
            if i == 0:
                leaf = anchor.detach().requires_grad_(True)
            else:
                with torch.no_grad():
                    leaf = target.purify(x.detach()).requires_grad_(True)
            logits = target.defense.classify(leaf)
            loss = LOSSES["ce"](logits, y)
            (g,) = torch.autograd.grad(loss.sum(), leaf)
            losses.append(loss.detach())
            grads.append(g)
            fooled.append((logits.argmax(1) != y).float())
        stacked = torch.stack(losses)  # (k, B)
        weights = torch.softmax(stacked / p.temperature, dim=0).view(k, -1, *[1] * (x.ndim - 1))
        (grad,) = torch.autograd.grad(anchor, xg, grad_outputs=(weights * torch.stack(grads)).sum(0))
        target.backwards += 1
        return grad, torch.stack(fooled).mean(0), stacked.mean(0)

    def run(self, target: Target, x: Tensor, y: Tensor, threat: ThreatModel | None, *, rng: SampleRNG) -> Tensor:
        assert threat is not None
        p = cast(DiffHammerParams, self.params)
        alpha = p.step_size if p.step_size is not None else 2.5 * threat.eps / p.steps
        selective = self._grafted_grad if (p.graft and target.can_graft) else self._selective_grad
        kept = _Keeper(x)  # by the fraction of the attacker's own draws fooled, then the mean loss
        trace = []
        for _ in range(p.restarts):
            x_adv = random_start(x, threat, rng)
            for step in range(p.steps + 1):
                grad, fooled, loss = selective(target, x_adv, y)
                trace.append(loss)
                kept.offer(x_adv, fooled + 1e-3 * torch.tanh(loss), torch.zeros_like(fooled, dtype=torch.bool))
                if step < p.steps:
                    x_adv = threat.project(x_adv + alpha * steepest_step(grad, threat.norm, 0.95, x_adv), x)
        self.last_trace = torch.stack(trace)
        return kept.best.detach()
