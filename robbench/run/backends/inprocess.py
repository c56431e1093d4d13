"""The default backend: units run one after another in this process."""

from __future__ import annotations

from collections.abc import Sequence

from robbench.run.backends.base import Progress, UnitKey, UnitResult
from robbench.run.backends.worker import run_unit_safely
from robbench.run.unit import UnitRunner


class InProcessBackend:
    """Units run one after another in this process, on the coordinator's runner."""

    name = "local"

    def __init__(self, runner: UnitRunner) -> None:
        self.runner = runner

    def run_round(self, keys: Sequence[UnitKey], progress: Progress) -> list[UnitResult]:
        labels = {c.id: c.label for c in self.runner.plan.cells}
        out = []
        for key in keys:
            progress.describe(labels.get(key[0], key[0]))
            out.append(run_unit_safely(self.runner, key, progress=progress.advance))
        return out

    def close(self) -> None:
        return None
