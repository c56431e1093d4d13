"""One batch of one cell: attack, check containment, judge with the real defense, build the rows.

Every sample is checked: the adversarial image must be finite, inside the threat ball and inside
[0, 1] (a threat-free attack must return the clean image). A violation is written into the row's
``error`` (:mod:`robbench.run.faults`) and the sample is judged on its clean image and never counted
robust. Costs per row: the attack's forward and backward passes of the defense, and the network
evaluations of the attack plus the judge (clean and adversarial, every draw).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from robbench.attacks.base import Attack
from robbench.attacks.target import Target
from robbench.core.seeding import SampleRNG
from robbench.defenses.base import Defense
from robbench.run.cells import Cell
from robbench.run.faults import row_error
from robbench.run.judge import attacker_rng, check_det, judge


@dataclass
class Batch:
    """Samples of one batch: images, labels, ids, and their positions in the data split."""

    x: Tensor
    y: Tensor
    ids: list[str]
    positions: list[int]


@dataclass
class Attacked:
    """What the attack returned, with its per-sample cost."""

    x_adv: Tensor
    seeds: list[int]
    forwards: list[int]
    backwards: list[int]
    model_evals: list[float]
    trace: Tensor | None


def attack_batch(
    cell: Cell, defense: Defense, attack: Attack, batch: Batch, surrogate: torch.nn.Module | None, suite_seed: int
) -> Attacked:
    """Run the cell's attack on the batch through a :class:`Target` with the cell's gradient mode."""
    x, b, device = batch.x, batch.x.shape[0], batch.x.device
    def_rng = attacker_rng(cell, batch.ids, suite_seed, device)
    if def_rng is not None and cell.randomness == "det":
        check_det(defense, cell, x, def_rng)
    target = Target(
        defense,
        gradient=cell.attack.gradient,
        randomness="det" if cell.randomness == "det" else "fresh",
        rng=def_rng,
        eot=cell.eot,
        surrogate=surrogate,
        judge_draws=cell.draws,
    )
    evals0 = defense.evals
    rng = SampleRNG.for_samples(batch.ids, suite_seed, cell.seed_key, "attack", device=device)
    attack.last_evals = None
    x_adv = attack.run(target, x, batch.y, cell.threat, rng=rng).detach()
    if attack.last_evals is not None:  # per-sample counts (third-party attacks run per sample)
        fwd, bwd, mev = (v.tolist() for v in attack.last_evals)
    else:
        model_evals = (defense.evals - evals0) / b
        fwd, bwd, mev = [target.forwards] * b, [target.backwards] * b, [model_evals] * b
    return Attacked(
        x_adv, list(rng.seeds), [int(v) for v in fwd], [int(v) for v in bwd], [float(v) for v in mev], attack.last_trace
    )


def containment(cell: Cell, x_adv: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """Per sample: inside the threat ball and [0, 1] and finite (B,) bool, and the perturbation norm (B,)."""
    if cell.threat is not None:
        return cell.threat.contains(x_adv, x), cell.threat.norm_of(x_adv, x)
    b = x.shape[0]
    unchanged = torch.isfinite(x_adv.flatten(1)).all(1) & ((x_adv - x).flatten(1).abs().amax(1) == 0)
    return unchanged, torch.zeros(b, device=x.device)


def run_batch(
    cell: Cell,
    defense: Defense,
    attack: Attack,
    batch: Batch,
    surrogate: torch.nn.Module | None,
    suite_seed: int,
    judged_out: list[Tensor] | None = None,
) -> list[dict[str, Any]]:
    """Attack, check, judge and describe one batch: one row per sample. ``judged_out``: receives the
    adversarial images the judge scored (the clean image where the attack's left the ball)."""
    x, b = batch.x, batch.x.shape[0]
    t0 = time.perf_counter()
    if x.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(x.device)
    att = attack_batch(cell, defense, attack, batch, surrogate, suite_seed)
    in_ball, norms = containment(cell, att.x_adv, x)
    evals1 = defense.evals
    clean_preds, clean_finite = judge(defense, cell, x, batch.ids, suite_seed)
    judged = torch.where(in_ball.view(-1, 1, 1, 1), att.x_adv, x)
    adv_preds, adv_finite = judge(defense, cell, judged, batch.ids, suite_seed)
    if judged_out is not None:
        judged_out.append(judged)
    judge_evals = (defense.evals - evals1) / b
    # a few whole-batch device->host copies instead of per-sample reads (each a GPU sync); they also
    # wait for the device, so `seconds` covers the GPU work
    host = {
        "label": batch.y.tolist(),
        "in_ball": in_ball.tolist(),
        "norm": norms.tolist(),
        "linf": (att.x_adv - x).flatten(1).abs().amax(1).tolist(),
        "image_finite": torch.isfinite(att.x_adv.flatten(1)).all(1).tolist(),
        "clean_finite": clean_finite.tolist(),
        "adv_finite": adv_finite.tolist(),
        "clean_preds": clean_preds.T.tolist(),
        "adv_preds": adv_preds.T.tolist(),  # (B, draws)
        "trace": att.trace.float().T.tolist() if att.trace is not None else None,
    }
    seconds = (time.perf_counter() - t0) / b
    peak = torch.cuda.max_memory_allocated(x.device) / 2**20 if x.device.type == "cuda" else None
    return [_row(cell, batch, att, host, i, judge_evals, seconds, peak) for i in range(b)]


def _row(
    cell: Cell,
    batch: Batch,
    att: Attacked,
    h: dict[str, Any],
    i: int,
    judge_evals: float,
    seconds: float,
    peak: float | None,
) -> dict[str, Any]:
    label, cf, af, ib = h["label"][i], h["clean_finite"][i], h["adv_finite"][i], h["in_ball"][i]
    err = row_error(
        attack=cell.attack.id,
        defense=cell.defense.display,
        threat=cell.threat_label,
        image_finite=h["image_finite"][i],
        in_ball=ib,
        clean_logits_finite=cf,
        adv_logits_finite=af,
        norm=h["norm"][i],
    )
    cc = [p == label and cf for p in h["clean_preds"][i]]
    # robust only where the defense's logits were finite on both inputs (a flagged row never counts) and,
    # per draw, the clean image was classified correctly under the same draw: a point the defense gets
    # wrong clean is never counted robust, so no attack line can exceed the clean line
    ac = [p == label and af and ib and c for p, c in zip(h["adv_preds"][i], cc, strict=True)]
    return cell.columns.row(
        sample_id=batch.ids[i],
        sample_index=batch.positions[i],
        label=label,
        seed=att.seeds[i],
        clean_pred=h["clean_preds"][i][0],
        clean_correct=cc[0],
        clean_correct_draws=cc,
        adv_pred=h["adv_preds"][i][0],
        adv_correct=ac[0],
        adv_correct_draws=ac,
        pert_norm=h["norm"][i],
        pert_linf=h["linf"][i],
        in_ball=ib,
        forward_evals=att.forwards[i],
        backward_evals=att.backwards[i],
        model_evals=att.model_evals[i] + judge_evals,
        seconds=seconds,
        peak_mem_mb=peak,
        loss_trace=h["trace"][i] if h["trace"] is not None else None,
        error=err,
    )
