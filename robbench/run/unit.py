"""The unit runner: runs units of a plan in this process and writes one shard per unit.

It builds the run's components once (:class:`~robbench.run.components.RunComponents`), splits a
cascaded unit into the samples still to attack and the skipped ones (:mod:`robbench.run.cascade`),
runs the batches (:mod:`robbench.run.batch`) and writes the unit's rows atomically. Every backend
(in-process, worker pool, Slurm job) runs units through one of these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from robbench.data.base import DataSplit
from robbench.results.schema import shard_name
from robbench.results.store import ResultsDir
from robbench.run.batch import Batch, run_batch
from robbench.run.cascade import split_unit
from robbench.run.components import RunComponents
from robbench.run.determinism import apply_from_env
from robbench.run.examples import store_examples
from robbench.run.plan import Plan, Unit
from robbench.run.record import code_stamp


class UnitRunner:
    """Runs units in this process: builds defenses and attacks once, judges, writes shards."""

    def __init__(
        self,
        plan: Plan,
        results: ResultsDir,
        device: torch.device,
        batch_size: int,
        accel: dict[str, bool] | None = None,
    ) -> None:
        self.plan = plan
        self.results = results
        self.device = device
        self.batch_size = batch_size
        self.components = RunComponents(plan, device, accel)
        apply_from_env()  # a worker process of a --deterministic run

    @property
    def data(self) -> DataSplit:
        return self.components.data

    def run_unit(self, unit: Unit, progress: Callable[[int], Any] | None = None) -> int:
        """Run ``unit`` and store its shard; returns the number of rows written."""
        cell, data, seed = unit.cell, self.data, self.plan.suite.seed
        defense = self.components.defense(cell.defense)
        attack = self.components.attack(cell.attack)
        surrogate = self.components.surrogate(cell.attack)
        todo, skipped = unit.indices, dict[int, dict[str, Any]]()
        if self.plan.cascade is not None:  # attack only the points still robust
            todo, skipped = split_unit(self.plan.cascade, self.results, cell, unit.indices, data.ids, seed)
            if skipped and progress is not None:
                progress(len(skipped))
        rows: list[dict[str, Any]] = []
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start : start + self.batch_size]
            batch = Batch(
                data.x[idx].to(self.device),
                data.y[idx].to(self.device),
                [data.ids[i] for i in idx],
                [self.plan.sample_positions[i] for i in idx],
            )
            n_ex = self.plan.suite.evaluation.save_examples if cell.threat is not None else 0
            keep = [j for j, i in enumerate(idx) if i < n_ex]
            judged: list[torch.Tensor] = []
            batch_rows = run_batch(cell, defense, attack, batch, surrogate, seed, judged if keep else None)
            if keep:
                store_examples(self.results.root, cell, defense, batch, judged[0], batch_rows, keep, seed)
            rows.extend(batch_rows)
            if progress is not None:
                progress(len(idx))
        if skipped:
            by_id = {r["sample_id"]: r for r in rows} | {r["sample_id"]: r for r in skipped.values()}
            rows = [by_id[data.ids[i]] for i in unit.indices]
        first = self.plan.sample_positions[unit.indices[0]]
        self.results.write_shard(cell.id, shard_name(first, [r["sample_id"] for r in rows]), rows, code_stamp())
        # flagged rows (robbench.run.faults) are reported by the session from the stored rows, resumed ones too
        return len(rows)
