"""The worker side of every backend: rebuild the plan from a :class:`~.base.WorkerSpec` (no second
validation: the coordinator checked the suite), run one unit with every failure turned into an
answer, and compute a defense's checks."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from robbench.errors import RobbenchError
from robbench.results.store import ResultsDir
from robbench.run.backends.base import CheckResult, CheckTask, UnitKey, UnitResult, WorkerSpec
from robbench.run.device import resolve_device
from robbench.run.options import ExecOptions
from robbench.run.plan import Plan, Unit
from robbench.run.unit import UnitRunner
from robbench.suite.load import parse_suite


def _abs(p: str | None) -> str | None:
    return str(Path(p).expanduser().resolve()) if p else None


def worker_spec(runner: UnitRunner, device: str, opts: ExecOptions, threads: int | None) -> WorkerSpec:
    """What a worker needs to run units of ``runner``'s plan (paths made absolute)."""
    plan = runner.plan
    return WorkerSpec(
        suite_text=plan.suite_text,
        source=plan.suite.name,
        out=str(runner.results.root.resolve()),
        device=device,
        batch_size=runner.batch_size,
        data_dir=_abs(plan.data_dir),
        zoo_dir=_abs(plan.zoo_dir),
        threads=threads,
        compile=opts.compile,
        channels_last=opts.channels_last,
        base_dir=plan.base_dir,
    )


_CACHE: dict[WorkerSpec, UnitRunner] = {}


def worker_runner(spec: WorkerSpec, device: str | None = None) -> UnitRunner:
    """The unit runner of a worker, built once per process and spec."""
    if spec in _CACHE and device is None:
        return _CACHE[spec]
    if spec.threads:
        torch.set_num_threads(spec.threads)
    suite = parse_suite(spec.suite_text, spec.source, Path(spec.base_dir) if spec.base_dir else None)
    plan = Plan(suite, suite_text=spec.suite_text, data_dir=spec.data_dir, zoo_dir=spec.zoo_dir, base_dir=spec.base_dir)
    accel = {"compile": spec.compile, "channels_last": spec.channels_last} if spec.compile or spec.channels_last else {}
    runner = UnitRunner(plan, ResultsDir(spec.out), resolve_device(device or spec.device), spec.batch_size, accel)
    _CACHE[spec] = runner
    return runner


def run_unit_safely(
    runner: UnitRunner, key: UnitKey, progress: Callable[[int], None] | None = None, *, raise_fatal: bool = True
) -> UnitResult:
    """Run one unit; any exception becomes an error result (``RobbenchError``: not retryable).

    A fatal ``RobbenchError`` (every unit would fail alike) is raised, or, in a worker process
    (``raise_fatal=False``), answered as a fatal result that the coordinator raises.
    """
    cell = runner.plan.cell(key[0])
    if cell is None:
        return UnitResult(
            key, error=f"cell {key[0]} is not in this worker's plan (different robbench version?)", retryable=False
        )
    t0 = time.perf_counter()
    try:
        rows = runner.run_unit(Unit(cell, list(key[1])), progress=progress)
    except RobbenchError as exc:
        if exc.fatal:  # e.g. a full results disk: every other unit would fail the same way
            if raise_fatal:
                raise
            return UnitResult(key, error=exc.message, retryable=False, fatal=True, hint=exc.hint)
        return UnitResult(key, error=exc.message, retryable=False)
    except Exception as exc:  # a unit's crash must not stop the others
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        tb = traceback.format_exc(limit=6).strip().splitlines()
        where = next((ln.strip() for ln in reversed(tb) if ln.strip().startswith("File ")), "")
        return UnitResult(key, error=f"{type(exc).__name__}: {exc}".strip() + (f" ({where})" if where else ""))
    return UnitResult(key, rows=rows, seconds=time.perf_counter() - t0)


def run_check_task(runner: UnitRunner | None, task: CheckTask, setup_error: BaseException | None) -> CheckResult:
    """A defense's compute checks; an ``info`` record saying why when the worker has no plan."""
    from robbench.run.checks.compute import defense_checks_safely
    from robbench.run.checks.records import not_computed

    if runner is None:
        err = setup_error
        why = err.message if isinstance(err, RobbenchError) else f"{type(err).__name__}: {err}"
        return CheckResult(task.display, [not_computed(task.display, f"skipped: {why}")])
    return CheckResult(task.display, defense_checks_safely(runner.plan, runner.components, task.display))
