"""The default backend: units run one after another in this process."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial

from robbench.run.backends.base import Progress, UnitKey, UnitResult
from robbench.run.backends.worker import run_unit_safely
from robbench.run.unit import UnitRunner


class InProcessBackend:
    """Units run one after another in this process, on the coordinator's runner."""

    name = "local"

    def __init__(self, runner: UnitRunner) -> None:
        self.runner = runner
        #: time.monotonic() after which no unit starts (``--max-minutes``); None: no limit
        self.deadline: float | None = None

    def run_round(self, keys: Sequence[UnitKey], progress: Progress) -> list[UnitResult]:
        labels = {c.id: c.label for c in self.runner.plan.cells}
        out = []
        for key in keys:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                break  # the rest is left for a resume
            progress.describe(labels.get(key[0], key[0]))
            out.append(run_unit_safely(self.runner, key, progress=partial(progress.advance, cell=key[0])))
        return out

    def close(self) -> None:
        return None
