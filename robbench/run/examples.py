"""Store the first ``evaluation.save_examples`` samples of each cell as images for the report's gallery."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from robbench.defenses.base import Defense
from robbench.results.examples import Example, write_example
from robbench.run.batch import Batch
from robbench.run.cells import Cell
from robbench.run.judge import judge_rng


@torch.no_grad()
def store_examples(
    root: Any,
    cell: Cell,
    defense: Defense,
    batch: Batch,
    judged: Tensor,
    rows: list[dict[str, Any]],
    keep: list[int],
    suite_seed: int,
) -> None:
    """Write examples ``keep`` (positions in ``batch``) of ``cell``: clean, the judged adversarial image, and its
    purification under the judge's first draw (streams of their own: no row or later draw changes)."""
    if not keep:
        return
    adv = judged[keep]
    purified = None
    if defense.has_purifier and not defense.own_classifier:
        ids = [batch.ids[j] for j in keep]
        rng = judge_rng(cell, ids, 0, suite_seed, adv.device) if cell.stochastic else None
        purified = defense.purify(adv, rng=rng).clamp(0.0, 1.0)
    for k, j in enumerate(keep):
        row = rows[j]
        write_example(
            root,
            cell.id,
            Example(
                sample_id=batch.ids[j],
                index=int(row["sample_index"]),
                label=int(row["label"]),
                clean_pred=int(row["clean_pred"]),
                adv_pred=int(row["adv_pred"]),
                clean=batch.x[j].float().cpu().numpy(),
                adv=adv[k].float().cpu().numpy(),
                purified=purified[k].float().cpu().numpy() if purified is not None else None,
            ),
        )
