"""AutoAttack where the attack's forward is not the judge's, without the library's shortcuts.

pyautoattack's ``run_standard_evaluation`` decides success on one forward of the target: it skips the
points its first clean forward misclassified, stops attacking a point once one forward is fooled, and
returns the *clean* image for every point it did not break. On a stochastic defense (fresh draws) or a
gray-box, transfer or custom-gradient target, a "success" the attack sees may not be one the judge
sees, and robbench's judge would re-judge mostly clean images, which overstates robustness.

On such targets robbench therefore runs each APGD attack (CE, DLR, and APGD-T per target class) on
*every* point and keeps its best-loss iterate, runs Square on every point and keeps its running best,
and keeps per point the candidate with the highest margin loss averaged over the judge's number of
draws (or the attack's ``eot_iter``, if larger) of fresh forwards: the attacker's own estimate. FAB and
FAB-T still go through the library (refused on such targets unless overridden, see
:mod:`robbench.run.honesty`). The judge decides success, as for every attack.
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


def _apgd_targeted_everywhere(aa: Any, model: nn.Module, x: Tensor, y: Tensor, draws: int) -> Tensor:
    """APGD-T on every point: per target class (ranked on one forward of the clean images, as the library
    does) the best-loss iterate of each restart; per point the candidate of highest mean margin."""
    apgd = aa.apgd_targeted
    apgd.init_hyperparam(x)
    with torch.no_grad():
        ranking = model(x).sort(dim=1)[1]
    best, best_margin = x.clone(), torch.full((x.shape[0],), -float("inf"), device=x.device)
    for target_class in range(2, apgd.n_target_classes + 2):
        apgd.y_target = ranking[:, -target_class]
        for _ in range(apgd.n_restarts):
            cand = apgd.attack_single_run(x, y)[0]
            best, best_margin = _keep_best(model, cand, y, draws, best, best_margin)
    return best


def square_every_point(sq: Any, model: nn.Module, x: Tensor, y: Tensor, draws: int) -> Tensor:
    """pyautoattack's Square on every point (not only those one clean forward gets right): the running
    best of each restart; per point the candidate of highest mean margin over ``draws`` forwards."""
    sq.init_hyperparam(x)
    torch.random.manual_seed(int(sq.seed))
    best, best_margin = x.clone(), torch.full((x.shape[0],), -float("inf"), device=x.device)
    for _ in range(sq.n_restarts):
        with torch.no_grad():
            cand = sq.attack_single_run(x, y)[1]
        best, best_margin = _keep_best(model, cand, y, draws, best, best_margin)
    return best


def _keep_best(
    model: nn.Module, cand: Tensor, y: Tensor, draws: int, best: Tensor, best_margin: Tensor
) -> tuple[Tensor, Tensor]:
    margin = _mean_margin(model, cand, y, draws)
    better = margin > best_margin
    best = torch.where(better.view(-1, *[1] * (cand.ndim - 1)), cand.detach(), best)
    return best, torch.where(better, margin, best_margin)


def _library(aa: Any, name: str, x: Tensor, y: Tensor) -> Tensor:
    old = aa.attacks_to_run
    aa.attacks_to_run = [name]
    try:
        out = aa.run_standard_evaluation(x, y, batch_size=x.shape[0])
    finally:
        aa.attacks_to_run = old
    adv: Tensor = out[0] if isinstance(out, tuple) else out
    return adv


#: attacks that :func:`run_every_point` runs on every point without the library's stopping rules; the
#: others (FAB, FAB-T: minimum-norm searches that stop at their first success) go through the library
#: and are refused on such targets unless ``evaluation.overrides`` holds ``library-early-stop``
EVERY_POINT = frozenset({"apgd-ce", "apgd-dlr", "apgd-t", "square"})


def run_every_point(aa: Any, model: nn.Module, attacks: list[str], x: Tensor, y: Tensor, draws: int) -> Tensor:
    """The per-point best candidate over the list's attacks, every point attacked (see the module doc)."""
    best, best_margin = x.clone(), torch.full((x.shape[0],), -float("inf"), device=x.device)
    for name in attacks:
        if name in _APGD_LOSS:
            cand = _apgd_everywhere(aa, name, x, y)
        elif name == "apgd-t":
            cand = _apgd_targeted_everywhere(aa, model, x, y, draws)
        elif name == "square":
            cand = square_every_point(aa.square, model, x, y, draws)
        else:
            cand = _library(aa, name, x, y)
        best, best_margin = _keep_best(model, cand, y, draws, best, best_margin)
    return best
