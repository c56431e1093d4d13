"""The progress bar of a run (rich): samples done over all cells, the current cell, time left.

The bar advances by each sample's estimated cost (:mod:`robbench.run.eta`), so its time left is the cost
left over the cost done per second, not samples over samples per second."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


# ---------------------------------------------------------------------------------------------
# backends: run one round of units and answer one result per unit
# ---------------------------------------------------------------------------------------------
class ProgressBar:
    """Samples done over all cells; silent when ``quiet`` or when there is nothing to do."""

    def __init__(self, units: Mapping[str, int] | int, quiet: bool, weights: Mapping[str, float] | None = None) -> None:
        """``units``: samples to run per cell id (or a plain count); ``weights``: cost of one sample per cell."""
        per_cell = {"": units} if isinstance(units, int) else dict(units)
        self.weights = dict(weights or {})
        self.total = sum(per_cell.values())
        self.total_cost = sum(n * self.weights.get(c, 1.0) for c, n in per_cell.items())
        self.done = 0
        self._mean = self.total_cost / self.total if self.total else 1.0
        self._prog: Any = None
        self._task: Any = None
        self.quiet = quiet

    @contextmanager
    def running(self) -> Iterator[ProgressBar]:
        if self.quiet or not self.total:
            yield self
            return
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[samples]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        ) as prog:
            self._prog = prog
            self._task = prog.add_task("samples (all cells)", total=self.total_cost, samples=self._samples())
            yield self
        self._prog = None

    def _samples(self) -> str:
        return f"{self.done}/{self.total} samples"

    def advance(self, k: int, cell: str | None = None) -> None:
        """``k`` samples of ``cell`` done (without a cell: at the mean cost per sample)."""
        self.done += k
        if self._prog is not None:
            cost = k * (self.weights.get(cell, self._mean) if cell is not None else self._mean)
            self._prog.update(self._task, advance=cost, samples=self._samples())

    def describe(self, text: str) -> None:
        if self._prog is not None:
            self._prog.update(self._task, description=text)
