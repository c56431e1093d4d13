"""The progress bar of a run (rich): samples done over all cells, the current cell, time left.

The bar advances by each sample's estimated cost (:mod:`robbench.run.eta`); its time left is
:class:`robbench.run.eta.LiveCost`'s: each defense's measured seconds per pass times the passes left (shown once
a unit has finished or stored rows give a rate), not samples left over samples per second."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from robbench.run.eta import LiveCost


# ---------------------------------------------------------------------------------------------
# backends: run one round of units and answer one result per unit
# ---------------------------------------------------------------------------------------------
class ProgressBar:
    """Samples done over all cells; silent when ``quiet`` or when there is nothing to do."""

    def __init__(
        self,
        units: Mapping[str, int] | int,
        quiet: bool,
        weights: Mapping[str, float] | None = None,
        cost: LiveCost | None = None,
    ) -> None:
        """``units``: samples to run per cell id (or a plain count); ``weights``: cost of one sample per cell;
        ``cost``: the live cost model whose time left the bar shows (without it, rich's own estimate)."""
        per_cell = {"": units} if isinstance(units, int) else dict(units)
        self.weights = dict(weights or {})
        self.total = sum(per_cell.values())
        self.total_cost = sum(n * self.weights.get(c, 1.0) for c, n in per_cell.items())
        self.done = 0
        self._mean = self.total_cost / self.total if self.total else 1.0
        self._prog: Any = None
        self._task: Any = None
        self.quiet = quiet
        self.cost = cost
        self._last = time.perf_counter()

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

        left = TextColumn("{task.fields[left]}") if self.cost is not None else TimeRemainingColumn()
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[samples]}"),
            TimeElapsedColumn(),
            left,
            transient=False,
        ) as prog:
            self._prog = prog
            self._task = prog.add_task(
                "samples (all cells)", total=self.total_cost, samples=self._samples(), left=self.left_text()
            )
            yield self
        self._prog = None

    def _samples(self) -> str:
        return f"{self.done}/{self.total} samples"

    def left_text(self) -> str:
        """The live cost model's time left, as the bar shows it."""
        secs = self.cost.seconds_left() if self.cost is not None else None
        if secs is None:
            return "time left: measuring"
        m, s = divmod(round(secs), 60)
        return f"~{m // 60}:{m % 60:02d}:{s:02d} left" if m >= 60 else f"~{m}:{s:02d} left"

    def advance(self, k: int, cell: str | None = None, seconds: float | None = None) -> None:
        """``k`` samples of ``cell`` done (without a cell: at the mean cost per sample) in ``seconds`` of one
        worker (None: the time since the last event, right for units that run one at a time in this process)."""
        now = time.perf_counter()
        spent = seconds if seconds is not None else now - self._last
        self._last = now
        self.done += k
        if self.cost is not None:
            self.cost.observe(cell, k, spent)
        if self._prog is not None:
            cost = k * (self.weights.get(cell, self._mean) if cell is not None else self._mean)
            self._prog.update(self._task, advance=cost, samples=self._samples(), left=self.left_text())

    def describe(self, text: str) -> None:
        self._last = time.perf_counter()  # a new unit starts: what came before is not its cost
        if self._prog is not None:
            self._prog.update(self._task, description=text)
