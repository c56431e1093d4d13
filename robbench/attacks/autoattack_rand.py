"""AutoAttack on a randomised target, without the library's single-draw shortcuts.

pyautoattack's ``run_standard_evaluation`` decides success on one forward of the defense: it skips the
points its first clean draw misclassified, stops attacking a point once one draw is fooled, and returns
the *clean* image for every point it did not break. On a stochastic defense robbench's judge (worst of
m fresh draws) then re-judges mostly clean images, which overstates robustness.

For a stochastic target robbench therefore runs each APGD attack of the list on *every* point with
``best_loss=True`` (the iterate of highest EoT-averaged loss, for broken and unbroken points alike),
runs the other attacks of the list as the library does, and keeps per point the candidate with the
highest margin loss averaged over ``eot`` fresh forwards: the attacker's own estimate. The judge
decides success, as for every attack.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from robbench.attacks.target import margin_loss

_APGD_LOSS = {"apgd-ce": "ce", "apgd-dlr": "dlr"}


def _mean_margin(model: nn.Module, x: Tensor, y: Tensor, draws: int) -> Tensor:
    with torch.no_grad():
        return torch.stack([margin_loss(model(x), y) for _ in range(max(1, draws))]).mean(0)


def _apgd_everywhere(aa: Any, name: str, x: Tensor, y: Tensor) -> Tensor:
    apgd = aa.apgd
    old = apgd.loss
    apgd.loss = _APGD_LOSS[name]
    try:
        out: Tensor = apgd.perturb(x, y, best_loss=True)
    finally:
        apgd.loss = old
    return out


def _library(aa: Any, name: str, x: Tensor, y: Tensor) -> Tensor:
    old = aa.attacks_to_run
    aa.attacks_to_run = [name]
    try:
        out = aa.run_standard_evaluation(x, y, batch_size=x.shape[0])
    finally:
        aa.attacks_to_run = old
    adv: Tensor = out[0] if isinstance(out, tuple) else out
    return adv


def run_every_point(aa: Any, model: nn.Module, attacks: list[str], x: Tensor, y: Tensor, draws: int) -> Tensor:
    """The per-point best candidate over the list's attacks, every point attacked (see the module doc)."""
    best, best_margin = x.clone(), torch.full((x.shape[0],), -float("inf"), device=x.device)
    for name in attacks:
        cand = _apgd_everywhere(aa, name, x, y) if name in _APGD_LOSS else _library(aa, name, x, y)
        margin = _mean_margin(model, cand, y, draws)
        better = margin > best_margin
        best = torch.where(better.view(-1, *[1] * (x.ndim - 1)), cand.detach(), best)
        best_margin = torch.where(better, margin, best_margin)
    return best
