"""The progress bar of a run (rich): samples done over all cells, the current cell, time left."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


# ---------------------------------------------------------------------------------------------
# backends: run one round of units and answer one result per unit
# ---------------------------------------------------------------------------------------------
class ProgressBar:
    """Samples done over all cells; silent when ``quiet`` or when there is nothing to do."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total = total
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
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        ) as prog:
            self._prog = prog
            self._task = prog.add_task("samples (all cells)", total=self.total)
            yield self
        self._prog = None

    def advance(self, k: int) -> None:
        if self._prog is not None:
            self._prog.advance(self._task, k)

    def describe(self, text: str) -> None:
        if self._prog is not None:
            self._prog.update(self._task, description=text)
