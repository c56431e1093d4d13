"""The row schema: one row per (sample, defense, attack, threat), and the one place rows are built.

Every row the engine stores (attacked, skipped by the cascade, or recording a failed unit) comes from
:meth:`CellColumns.row`: the identity columns of its cell, the sample's columns, and what was
measured. Shards are named by :func:`shard_name`. No torch here: readers of results import this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

from robbench.core.identity import stable_hash

SCHEMA = pa.schema(
    [
        ("cell", pa.string()),
        ("sample_id", pa.string()),
        ("sample_index", pa.int64()),
        ("label", pa.int64()),
        ("defense", pa.string()),
        ("defense_name", pa.string()),
        ("stochastic", pa.bool_()),
        ("attack", pa.string()),
        ("attack_name", pa.string()),
        ("gradient", pa.string()),
        ("randomness", pa.string()),
        ("eot", pa.int64()),
        ("norm", pa.string()),
        ("eps", pa.float64()),
        ("threat", pa.string()),
        ("seed", pa.int64()),
        ("draws", pa.int64()),
        ("clean_pred", pa.int64()),
        ("clean_correct", pa.bool_()),
        ("clean_correct_draws", pa.list_(pa.bool_())),
        ("adv_pred", pa.int64()),
        ("adv_correct", pa.bool_()),
        ("adv_correct_draws", pa.list_(pa.bool_())),
        ("pert_norm", pa.float64()),
        ("pert_linf", pa.float64()),
        ("in_ball", pa.bool_()),
        ("forward_evals", pa.int64()),
        ("backward_evals", pa.int64()),
        ("model_evals", pa.float64()),
        ("seconds", pa.float64()),
        ("peak_mem_mb", pa.float64()),
        ("loss_trace", pa.list_(pa.float32())),
        ("error", pa.string()),
        #: cascade (robbench.run.cascade): the attack id that broke this sample earlier; null when attacked
        ("broken_by", pa.string()),
    ]
)

COLUMNS = [f.name for f in SCHEMA]

#: shard-name prefix of failure rows (deleted and retried by the next run)
FAILED_PREFIX = "failed-"

#: the columns a row takes from its cell
CELL_COLUMNS = (
    "cell",
    "defense",
    "defense_name",
    "stochastic",
    "attack",
    "attack_name",
    "gradient",
    "randomness",
    "eot",
    "norm",
    "eps",
    "threat",
    "draws",
)


@dataclass(frozen=True)
class CellColumns:
    """The identity columns a cell gives each of its rows."""

    cell: str
    defense: str
    defense_name: str
    stochastic: bool
    attack: str
    attack_name: str
    gradient: str
    randomness: str
    eot: int
    norm: str
    eps: float
    threat: str
    draws: int

    def row(self, *, sample_id: str, sample_index: int, label: int, seed: int, **measured: Any) -> dict[str, Any]:
        """A complete row: these identity columns, the sample's, and ``measured`` (unknown keys refused)."""
        unknown = sorted(set(measured) - set(COLUMNS))
        if unknown:
            raise KeyError(f"not row columns: {unknown}")
        return {
            **asdict(self),
            "sample_id": sample_id,
            "sample_index": int(sample_index),
            "label": int(label),
            "seed": int(seed),
            **measured,
        }

    def failure_row(self, *, sample_id: str, sample_index: int, label: int, seed: int, error: str) -> dict[str, Any]:
        """The row of a sample whose unit failed: nothing claimed (never clean-correct, never robust)."""
        return self.row(
            sample_id=sample_id,
            sample_index=sample_index,
            label=label,
            seed=seed,
            clean_correct=False,
            clean_correct_draws=[],
            adv_correct=False,
            adv_correct_draws=[],
            in_ball=None,
            error=error,
        )


def shard_name(first_position: int, sample_ids: Sequence[str], *, failed: bool = False) -> str:
    """The file stem of a shard: its first sample position and a hash of its sample ids."""
    return f"{FAILED_PREFIX if failed else ''}{first_position:08d}-{stable_hash(list(sample_ids), 8)}"
