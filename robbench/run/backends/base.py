"""What every backend shares: the unit key, the answer for a unit, what a worker is given, and the
:class:`Backend` protocol the driver (:mod:`robbench.run.execute`) runs rounds of units through.

A backend runs a round of units and answers one :class:`UnitResult` per unit; the driver retries,
writes failure rows and orders stages. Backends: in this process (:mod:`.inprocess`), a local
worker pool (:mod:`.pool`), Slurm jobs through submitit (:mod:`.slurm`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from robbench.errors import RobbenchError

UnitKey = tuple[str, tuple[int, ...]]  # (cell id, sample positions in the selected subset)


class Progress(Protocol):
    """The progress display a backend advances (:class:`robbench.run.progress.ProgressBar`)."""

    def advance(self, k: int, cell: str | None = None, seconds: float | None = None) -> None: ...

    def describe(self, text: str) -> None: ...


class Backend(Protocol):
    """Runs rounds of units; ``close`` releases workers or jobs."""

    name: str

    def run_round(self, keys: Sequence[UnitKey], progress: Progress) -> list[UnitResult]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs to rebuild the plan and run units (picklable)."""

    suite_text: str
    source: str
    out: str
    device: str
    batch_size: int
    data_dir: str | None
    zoo_dir: str | None
    threads: int | None
    compile: bool = False
    channels_last: bool = False
    #: the suite file's folder: relative checkpoint paths resolve against it
    base_dir: str | None = None


@dataclass
class UnitResult:
    """The outcome of one unit: rows written, or an error (retryable or not, charged or not)."""

    key: UnitKey
    rows: int = 0
    error: str | None = None
    retryable: bool = True
    #: False for a unit that never ran because its job died on another unit (resubmitted free)
    charged: bool = True
    #: a RobbenchError that every unit would hit (``RobbenchError.fatal``, or a worker that cannot
    #: even build the plan): the coordinator stops the run with it
    fatal: bool = False
    hint: str | None = None
    #: wall seconds the unit ran (the progress bar learns each defense's cost from them)
    seconds: float = 0.0


@dataclass(frozen=True)
class CheckTask:
    """The compute checks of one defense (:func:`robbench.run.checks.compute.defense_checks`), run by a
    pool worker beside the units so that they do not add to the run's serial part."""

    display: str


@dataclass
class CheckResult:
    display: str
    records: list[dict[str, Any]]


def setup_failure(key: UnitKey, exc: BaseException) -> UnitResult:
    """The answer of a worker whose plan could not be built (fatal: no unit can run there)."""
    where = f"worker on {socket.gethostname()} (pid {os.getpid()})"
    if isinstance(exc, RobbenchError):
        return UnitResult(key, error=f"{where}: {exc.message}", retryable=False, fatal=True, hint=exc.hint)
    return UnitResult(key, error=f"{where}: {type(exc).__name__}: {exc}", retryable=False, fatal=True)
