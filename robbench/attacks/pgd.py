"""Projected gradient descent for Linf, L2 and L1 budgets."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, field_validator
from torch import Tensor

from robbench.attacks.base import Attack
from robbench.attacks.target import LOSSES, Target
from robbench.core.components import Params
from robbench.core.seeding import SampleRNG
from robbench.core.threat import ThreatModel, parse_eps


class PGDParams(Params):
    steps: int = Field(default=20, ge=1, le=100_000)
    #: step size; default 2.5 * eps / steps (Madry et al. 2018); a number or a fraction "2/255"
    step_size: float | None = None
    random_start: bool = True
    restarts: int = Field(default=1, ge=1, le=1000)
    loss: Literal["ce", "margin"] = "ce"
    #: L1 only: fraction of gradient coordinates *not* moved per step (sparse L1 descent)
    l1_sparsity: float = Field(default=0.95, ge=0.0, lt=1.0)

    @field_validator("step_size", mode="before")
    @classmethod
    def _step(cls, v: object) -> float | None:
        if v is None:
            return None
        s = parse_eps(v)  # type: ignore[arg-type]
        if not s > 0:
            raise ValueError("step_size must be positive")
        return s


def random_start(x: Tensor, threat: ThreatModel, rng: SampleRNG) -> Tensor:
    """A uniformly random direction and radius inside the ball (per-sample streams), projected."""
    eps = threat.eps
    if threat.norm == "linf":
        delta = (rng.rand(*x.shape[1:]).to(x.device) * 2 - 1) * eps
    else:
        d = x[0].numel()
        if threat.norm == "l2":
            direction = rng.randn(*x.shape[1:]).to(x.device)
        else:
            e = -torch.log(rng.rand(*x.shape[1:]).clamp_min(1e-12)).to(x.device)
            direction = e * torch.sign(rng.rand(*x.shape[1:]).to(x.device) - 0.5)
        p = 2 if threat.norm == "l2" else 1
        norms = direction.flatten(1).norm(p=p, dim=1).clamp_min(1e-12)
        radius = rng.rand().to(x.device).squeeze(-1) ** (1.0 / d) * eps if d else torch.zeros(x.shape[0])
        delta = direction / norms.view(-1, *[1] * (x.ndim - 1)) * radius.view(-1, *[1] * (x.ndim - 1))
    return threat.project(x + delta, x)


def steepest_step(grad: Tensor, norm: str, l1_sparsity: float) -> Tensor:
    """Unit-norm steepest ascent direction for the given norm."""
    shape = grad.shape
    g = grad.flatten(1)
    if norm == "linf":
        return grad.sign()
    if norm == "l2":
        return (g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)).view(shape)
    # L1: move only the largest |g| coordinates (sparse L1 descent, Tramer & Boneh 2019)
    k = max(1, round((1 - l1_sparsity) * g.shape[1]))
    top = g.abs().topk(k, dim=1).indices
    step = torch.zeros_like(g).scatter_(1, top, g.gather(1, top).sign())
    return (step / k).view(shape)


class PGD(Attack):
    """PGD (Madry et al. 2018) for Linf, L2 and L1, on any gradient mode of the target.

    Paper: Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep Learning Models Resistant to
    Adversarial Attacks", ICLR 2018. Threat norms: linf, l2, l1.

    Parameters: ``steps`` (20), ``step_size`` (default 2.5 * eps / steps), ``random_start``
    (True; uniform in the ball from the sample's own seeded stream), ``restarts`` (1), ``loss``
    (``ce`` or ``margin``), ``l1_sparsity`` (0.95).

    Choices: Linf steps by the gradient sign, L2 by the normalised gradient, L1 by the sparse
    steepest direction on the top 5 % coordinates (SLIDE-style), each followed by the exact
    projection onto ball ∩ [0,1]. On a target whose forward is deterministic the attack keeps,
    per sample, the first iterate that is misclassified, else the highest-loss one over steps and
    restarts; on a stochastic target (fresh draws) it returns the last iterate, since a
    "success" there may be one lucky draw.
    """

    Params = PGDParams
    norms = frozenset({"linf", "l2", "l1"})

    def run(self, target: Target, x: Tensor, y: Tensor, threat: ThreatModel | None, *, rng: SampleRNG) -> Tensor:
        assert threat is not None
        p: PGDParams = self.params  # type: ignore[assignment]
        alpha = p.step_size if p.step_size is not None else 2.5 * threat.eps / p.steps
        keep_best = target.deterministic
        best = x.clone()
        best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device)
        found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        trace = []
        for _ in range(p.restarts):
            x_adv = random_start(x, threat, rng) if p.random_start else x.clone()
            for _step in range(p.steps):
                loss, grad, logits = target.loss_grad(x_adv, y, p.loss)
                trace.append(loss)
                if keep_best:
                    wrong = logits.argmax(1) != y
                    better = (~found) & (wrong | (loss > best_loss))
                    best = torch.where(better.view(-1, *[1] * (x.ndim - 1)), x_adv, best)
                    best_loss = torch.where(better, loss, best_loss)
                    found |= wrong
                x_adv = threat.project(x_adv + alpha * steepest_step(grad, threat.norm, p.l1_sparsity), x)
            if keep_best:
                with torch.no_grad():
                    logits = target.logits(x_adv)
                    loss = LOSSES[p.loss](logits, y)
                wrong = logits.argmax(1) != y
                better = (~found) & (wrong | (loss > best_loss))
                best = torch.where(better.view(-1, *[1] * (x.ndim - 1)), x_adv, best)
                best_loss = torch.where(better, loss, best_loss)
                found |= wrong
            else:
                best = x_adv
        self.last_trace = torch.stack(trace).detach() if trace else None
        return best.detach()
