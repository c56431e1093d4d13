"""The judge: the real defense's predictions on clean and adversarial images, over the cell's draws,
and the randomness an attack sees of a stochastic defense.

The runner, never the attack, decides success. A stochastic defense is judged on ``cell.draws``
independent draws from per-sample streams that depend on the suite seed, the defense and the sample
(not on the attack), so two attacks on one defense are judged on the same draws. With ``randomness:
det`` the attacker is given exactly the judge's draw-0 seeds.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robbench.core.seeding import SampleRNG
from robbench.defenses.base import Defense
from robbench.errors import RobbenchError
from robbench.run.cells import Cell


def judge_rng(cell: Cell, ids: list[str], draw: int, suite_seed: int, device: torch.device) -> SampleRNG:
    """The streams of the judge's draw ``draw`` for these samples."""
    return SampleRNG.for_samples(ids, suite_seed, cell.defense_hash, "judge", draw, device=device)


def attacker_rng(cell: Cell, ids: list[str], suite_seed: int, device: torch.device) -> SampleRNG | None:
    """The defense randomness the attack sees: det = the judge's draw-0 seeds; fresh = streams of its own."""
    if not cell.stochastic:
        return None
    if cell.randomness == "det":
        return judge_rng(cell, ids, 0, suite_seed, device)
    return SampleRNG.for_samples(ids, suite_seed, cell.seed_key, "attack-defense", device=device)


@torch.no_grad()
def judge(defense: Defense, cell: Cell, x: Tensor, ids: list[str], suite_seed: int) -> tuple[Tensor, Tensor]:
    """Predictions (draws, B) and a finite-output mask (B,) of the real defense on ``x``."""
    preds, finite = [], torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    for j in range(cell.draws):
        rng = judge_rng(cell, ids, j, suite_seed, x.device) if cell.stochastic else None
        logits = defense(x, rng)
        finite &= torch.isfinite(logits).all(dim=1)
        preds.append(logits.argmax(1))
    return torch.stack(preds), finite


def check_det(defense: Defense, cell: Cell, x: Tensor, rng: SampleRNG) -> None:
    """det mode: two forwards (purifier and classifier) with the attacker-known seeds must agree exactly."""
    with torch.no_grad():
        rng.reset()
        a = defense(x, rng)
        rng.reset()
        b = defense(x, rng)
    if not torch.equal(a, b):
        raise RobbenchError(
            f"cell {cell.label}: defense {cell.defense.display!r} is not deterministic with its seeds fixed "
            f"(two forwards differ by up to {float((a - b).abs().max()):.3g})",
            hint="the defense draws randomness outside the generator it is given; fix the defense",
        )
