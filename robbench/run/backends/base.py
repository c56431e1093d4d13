"""Executors: where a run's work units execute, how failures are retried, how results merge.

The runner plans *units* (one cell, a list of samples) whose seeds depend only on the suite seed,
the cell and each sample id, so any split of the units over processes or cluster jobs gives the
same rows as one process. Each unit writes one atomic parquet shard into the results directory;
merging is reading that directory, and a rerun plans only the units whose rows are missing.

Executors
    ``local`` (default)
        ``workers == 1``: the units run in this process. ``workers > 1``: a pool of worker
        processes, each with ``threads`` torch threads (default: the CPU cores divided by the
        workers), fed one unit at a time (dynamic load balancing). A worker that dies (segfault,
        out of memory) is replaced and only its current unit is charged a failed attempt. The
        workers start (and load the data) while the coordinator loads the models, and they also
        compute the false-robustness checks of :mod:`robbench.run.checks`, one task per defense queued
        ahead of the units, so neither adds to the run's serial part.
    ``submitit``
        Slurm through `submitit <https://github.com/facebookincubator/submitit>`_ (the extra
        ``pip install 'robbench[submitit]'``): the units are grouped into ``shards`` jobs (a job
        array), tracked until done, and the failed ones resubmitted. ``cluster="local"`` runs the
        same jobs as local subprocesses (submitit's LocalExecutor: the tests use it), ``"debug"``
        in this process; ``"auto"`` (default) is Slurm, refused where no Slurm is found. A job killed at its time limit or preempted is requeued by Slurm and
        continues with the units it had not finished (the job skips units whose rows exist).

Failures
    A unit that raises is retried up to ``max_retries`` times (a :class:`RobbenchError`, a
    deterministic problem such as a defense that ignores its seeds, is not retried). A unit that
    still fails gets *failure rows*: one per sample, ``error`` = ``"unit failed after N attempts:
    ..."``, never counted robust or clean-correct; the other units continue and the run ends with
    status ``failed``. Failure rows live in shards named ``failed-*`` that a rerun deletes first,
    so a rerun retries exactly those units.

The coordinating process holds the results directory's lock for the whole run; workers write
their shards (atomically) without taking it and never quarantine or delete anything.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robbench.errors import RobbenchError
from robbench.run.options import ExecOptions

if TYPE_CHECKING:
    from robbench.results.store import ResultsDir
    from robbench.run.plan import Plan, Unit
    from robbench.run.unit import Executor


UnitKey = tuple[str, tuple[int, ...]]  # (cell id, sample positions in the selected subset)


# ---------------------------------------------------------------------------------------------
# what a worker needs, and what it answers
# ---------------------------------------------------------------------------------------------
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


@dataclass
class UnitResult:
    """The outcome of one unit: rows written, or an error (retryable or not, charged or not)."""

    key: UnitKey
    rows: int = 0
    error: str | None = None
    retryable: bool = True
    #: False for a unit that never ran because its job died on another unit (resubmitted free)
    charged: bool = True
    failures: list[str] = field(default_factory=list)
    #: a RobbenchError that every unit would hit (``RobbenchError.fatal``, or a worker that cannot
    #: even build the plan): the coordinator stops the run with it
    fatal: bool = False
    hint: str | None = None


@dataclass(frozen=True)
class CheckTask:
    """The compute checks of one defense (:func:`robbench.run.checks.compute.defense_checks`), run by a pool worker
    beside the units so that they do not add to the run's serial part."""

    display: str


@dataclass
class CheckResult:
    display: str
    records: list[dict[str, Any]]


def _run_check_task(ex: Executor | None, task: CheckTask, setup_error: BaseException | None) -> CheckResult:
    from robbench.run.checks.compute import defense_checks_safely
    from robbench.run.checks.records import not_computed

    if ex is None:
        why = (
            setup_error.message
            if isinstance(setup_error, RobbenchError)
            else f"{type(setup_error).__name__}: {setup_error}"
        )
        return CheckResult(task.display, [not_computed(task.display, f"skipped: {why}")])
    return CheckResult(task.display, defense_checks_safely(ex.plan, ex, task.display))


def unit_key(unit: Unit) -> UnitKey:
    return (unit.cell.id, tuple(unit.indices))


def _abs(p: str | None) -> str | None:
    return str(Path(p).expanduser().resolve()) if p else None


def worker_spec(ex: Executor, device: str, opts: ExecOptions, threads: int | None) -> WorkerSpec:
    plan = ex.plan
    return WorkerSpec(
        suite_text=plan.suite_text,
        source=plan.suite.name,
        out=str(ex.results.root.resolve()),
        device=device,
        batch_size=ex.batch_size,
        data_dir=_abs(plan.data_dir),
        zoo_dir=_abs(plan.zoo_dir),
        threads=threads,
        compile=opts.compile,
        channels_last=opts.channels_last,
    )


_WORKER_CACHE: dict[WorkerSpec, Executor] = {}


def worker_executor(spec: WorkerSpec, device: str | None = None) -> Executor:
    """The in-process runner of a worker, built once per process and spec."""
    if spec in _WORKER_CACHE and device is None:
        return _WORKER_CACHE[spec]
    import torch

    from robbench.results.store import ResultsDir
    from robbench.run.device import resolve_device
    from robbench.run.plan import Plan
    from robbench.suite.load import parse_suite

    if spec.threads:
        torch.set_num_threads(spec.threads)
    suite = parse_suite(spec.suite_text, spec.source)
    plan = Plan(suite, suite_text=spec.suite_text, data_dir=spec.data_dir, zoo_dir=spec.zoo_dir)
    ex = _make_executor(
        plan,
        ResultsDir(spec.out),
        resolve_device(device or spec.device),
        spec.batch_size,
        spec.compile,
        spec.channels_last,
    )
    _WORKER_CACHE[spec] = ex
    return ex


def _make_executor(
    plan: Plan, rd: ResultsDir, device: Any, batch_size: int, compile: bool, channels_last: bool
) -> Executor:
    from robbench.run.unit import Executor

    ex = Executor(plan, rd, device, batch_size, quiet=True)
    if compile or channels_last:
        ex.accel = {"compile": compile, "channels_last": channels_last}  # read by Executor.ctx / defense()
    return ex


def run_unit_safely(
    ex: Executor, key: UnitKey, progress: Callable[[int], None] | None = None, *, raise_fatal: bool = True
) -> UnitResult:
    """Run one unit; any exception becomes an error result (``RobbenchError``: not retryable).

    A fatal ``RobbenchError`` (every unit would fail alike) is raised, or, in a worker process
    (``raise_fatal=False``), answered as a fatal result that the coordinator raises.
    """
    from robbench.run.plan import Unit

    cells = {c.id: c for c in ex.plan.cells}
    if key[0] not in cells:
        return UnitResult(
            key, error=f"cell {key[0]} is not in this worker's plan (different robbench version?)", retryable=False
        )
    before = len(ex.failures)
    try:
        rows = ex.run_unit(Unit(cells[key[0]], list(key[1])), progress=progress)
    except RobbenchError as exc:
        if exc.fatal:  # e.g. a full results disk: every other unit would fail the same way
            if raise_fatal:
                raise
            return UnitResult(key, error=exc.message, retryable=False, fatal=True, hint=exc.hint)
        return UnitResult(key, error=exc.message, retryable=False)
    except Exception as exc:
        _free_device_memory()
        tb = traceback.format_exc(limit=6).strip().splitlines()
        where = next((ln.strip() for ln in reversed(tb) if ln.strip().startswith("File ")), "")
        return UnitResult(key, error=f"{type(exc).__name__}: {exc}".strip() + (f" ({where})" if where else ""))
    return UnitResult(key, rows=rows, failures=ex.failures[before:])


def _free_device_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass


def _setup_failure(key: UnitKey, exc: BaseException) -> UnitResult:
    """The answer of a worker whose plan could not be built (fatal: no unit can run there)."""
    import socket

    where = f"worker on {socket.gethostname()} (pid {os.getpid()})"
    if isinstance(exc, RobbenchError):
        return UnitResult(key, error=f"{where}: {exc.message}", retryable=False, fatal=True, hint=exc.hint)
    return UnitResult(key, error=f"{where}: {type(exc).__name__}: {exc}", retryable=False, fatal=True)
