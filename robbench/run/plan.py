"""The plan of a suite: its samples, its cells (with the cascade's order when asked for), and the units
of work. Computes nothing heavy and validates nothing: the suite was checked before
(:func:`robbench.run.validate.check_suite`), once, in the process that reads it.

A *unit* is a cell and a list of samples; units are independent and carry their own seeds (derived
from the suite seed, the cell and each sample id), so any split of the work gives the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from robbench.core.identity import sample_id
from robbench.data.base import load_dataset
from robbench.run.adaptive import expand_adaptive
from robbench.run.cascade import Cascade
from robbench.run.cells import Cell, Identities, build_cells
from robbench.suite.model import Suite
from robbench.zoo import model_identity


@dataclass
class Unit:
    """One cell on some samples (positions in the suite's selected subset)."""

    cell: Cell
    indices: list[int]

    @property
    def key(self) -> tuple[str, tuple[int, ...]]:
        return (self.cell.id, tuple(self.indices))


class Plan:
    """Everything resolved for a checked suite: data set, sample positions, cells, identities."""

    def __init__(
        self,
        suite: Suite,
        *,
        suite_text: str = "",
        data_dir: str | None = None,
        zoo_dir: str | None = None,
        base_dir: str | None = None,
    ) -> None:
        #: warnings about the suite found while planning (EoT forced to 1, ...) and the expansion of
        #: ``adaptive`` entries: `robbench validate` prints them, the manifest records them
        self.notes: list[str] = []
        suite = expand_adaptive(suite, self.notes)
        self.suite = suite
        self.suite_text = suite_text
        #: the suite file's folder (relative checkpoint paths in ``suite_text`` resolve against it)
        self.base_dir = base_dir
        self.data_dir = data_dir or suite.data.data_dir
        self.zoo_dir = zoo_dir
        self.dataset = load_dataset(suite.data.dataset, self.data_dir)
        self.sample_positions = _positions(suite, self.dataset.size(suite.data.split))
        self.classifier_identity = model_identity(suite.classifier) if suite.classifier else None
        ids = Identities(self.classifier_identity, {"dataset": suite.data.dataset, "split": suite.data.split})
        self.cells = build_cells(suite, ids, self.notes)
        self.cascade = Cascade(self.cells, suite.evaluation.scoring) if suite.evaluation.cascade else None

    @property
    def sample_ids(self) -> list[str]:
        """The ids of the suite's samples, in order."""
        return [sample_id(self.dataset.name, self.suite.data.split, p) for p in self.sample_positions]

    def cell(self, cell_id: str) -> Cell | None:
        return next((c for c in self.cells if c.id == cell_id), None)


def _positions(suite: Suite, n: int) -> list[int]:
    if suite.data.indices is not None:
        return list(suite.data.indices)
    count = suite.data.n_samples or (n - suite.data.offset)
    return list(range(suite.data.offset, suite.data.offset + count))


def plan_units(plan: Plan, done: dict[str, set[str]], shard_size: int) -> list[Unit]:
    """Units for every (cell, sample) not yet stored, in chunks of ``shard_size`` samples."""
    ids = plan.sample_ids
    units = []
    for cell in plan.cells:
        have = done.get(cell.id, set())
        missing = [i for i, sid in enumerate(ids) if sid not in have]
        for s in range(0, len(missing), shard_size):
            units.append(Unit(cell, missing[s : s + shard_size]))
    return units
