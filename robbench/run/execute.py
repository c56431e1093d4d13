"""The driver: runs a run's units on a backend, in stage order, with retries and failure rows.

Units (one cell, a list of samples) carry seeds that depend only on the suite seed, the cell and each
sample id, so any split of the units over processes or cluster jobs gives the same rows as one
process. Each unit writes one atomic parquet shard; merging is reading the results directory, and a
rerun plans only the units whose rows are missing.

Failures: a unit that raises is retried up to ``max_retries`` times (a :class:`RobbenchError`, a
deterministic problem such as a defense that ignores its seeds, is not retried). A unit that still
fails gets *failure rows*: one per sample, ``error`` = ``"unit failed after N attempts: ..."``, never
counted robust or clean-correct; the other units continue and the run ends with status ``failed``.
Failure rows live in shards named ``failed-*`` that a rerun deletes first, so a rerun retries exactly
those units. The coordinating process holds the results directory's lock for the whole run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robbench.errors import RobbenchError
from robbench.results.schema import FAILED_PREFIX, shard_name
from robbench.results.store import ResultsDir
from robbench.run.backends.base import Backend, UnitKey, UnitResult
from robbench.run.backends.inprocess import InProcessBackend
from robbench.run.backends.pool import PoolBackend
from robbench.run.backends.worker import worker_spec
from robbench.run.options import ExecOptions, ExecutorError
from robbench.run.progress import ProgressBar
from robbench.run.record import code_stamp
from robbench.run.threads import choose_threads
from robbench.run.unit import UnitRunner

ERROR_PREFIX = "unit failed"


@dataclass
class ExecReport:
    """What an execution did: rows written, failures, units submitted per round, retries."""

    written: int = 0
    failures: list[str] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    retries: int = 0
    failed_units: int = 0
    backend: str = "local"
    job_ids: list[str] = field(default_factory=list)
    #: compute-check records made by the workers beside the units, by defense (see robbench.run.checks)
    checks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: units not started because ``--max-minutes`` ran out (a rerun resumes them)
    units_left: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "units_submitted": sum(self.rounds),
            "rounds": self.rounds,
            "retries": self.retries,
            "failed_units": self.failed_units,
            "job_ids": self.job_ids[:1000],
            "checks_in_workers": sorted(self.checks),
            "units_left": self.units_left,
        }


def clear_failed(rd: ResultsDir) -> int:
    """Delete the failure shards of earlier runs (call under the lock) so their units run again."""
    n = 0
    if rd.rows_dir.is_dir():
        for p in rd.rows_dir.glob(f"*/{FAILED_PREFIX}*.parquet"):
            p.unlink()
            n += 1
    return n


def write_failure(runner: UnitRunner, key: UnitKey, message: str) -> None:
    """One failure row per sample of a unit that failed: its identity, the error, nothing claimed."""
    from robbench.core.seeding import derive_seed

    plan = runner.plan
    cell = plan.cell(key[0])
    assert cell is not None
    data, cols = runner.data, cell.columns
    rows = [
        cols.failure_row(
            sample_id=data.ids[i],
            sample_index=plan.sample_positions[i],
            label=int(data.y[i]),
            seed=derive_seed(plan.suite.seed, cell.seed_key, "attack", data.ids[i]),
            error=message,
        )
        for i in key[1]
    ]
    first = plan.sample_positions[key[1][0]]
    runner.results.write_shard(
        key[0], shard_name(first, [r["sample_id"] for r in rows], failed=True), rows, code_stamp()
    )


def stages(runner: UnitRunner, keys: list[UnitKey]) -> list[list[UnitKey]]:
    """Units grouped into stages that must run in order (cascade: attack k after attacks < k)."""
    if not runner.plan.suite.evaluation.cascade:
        return [keys] if keys else []
    order = {a.id: i for i, a in enumerate(runner.plan.suite.attacks)}
    by_stage: dict[int, list[UnitKey]] = {}
    for k in keys:
        cell = runner.plan.cell(k[0])
        by_stage.setdefault(order.get(cell.attack.id, 0) if cell else 0, []).append(k)
    return [by_stage[s] for s in sorted(by_stage)]


def make_backend(
    runner: UnitRunner, keys: list[UnitKey], opts: ExecOptions, *, device: str, threads: int | None, checks: bool
) -> Backend:
    """The backend ``opts`` names; a pool starts its workers (and queues the checks) right away."""
    if opts.executor == "local" and opts.workers == 1:
        return InProcessBackend(runner)
    if opts.executor == "local":
        pool = PoolBackend(
            worker_spec(runner, device, opts, threads or choose_threads(None, opts.workers).threads), opts.workers
        )
        if keys:
            if checks:
                from robbench.run.checks.compute import checked_defenses

                pool.queue_checks(checked_defenses(runner.plan))
            pool.start(len(keys) + len(pool.check_tasks))
            # load (or train, once) the models here, not in every worker at the same time; the
            # workers meanwhile start up and load the data
            try:
                for dspec in runner.plan.suite.defenses:
                    runner.components.defense(dspec)
            except BaseException:
                pool.aborted = True  # close() terminates the workers instead of waiting for them
                pool.close()
                raise
        return pool
    from robbench.run.backends.slurm import SlurmBackend

    folder = Path(opts.folder) if opts.folder else runner.results.root / ".submitit"
    spec = worker_spec(runner, device, opts, threads or opts.cpus_per_job)
    return SlurmBackend(spec, opts, folder.resolve(), runner)


def _settle(
    runner: UnitRunner, res: UnitResult, opts: ExecOptions, attempts: dict[UnitKey, int], report: ExecReport
) -> bool:
    """Account for one result; True when the unit must run again."""
    if res.fatal:
        fatal = RobbenchError(res.error or "a worker failed", hint=res.hint)
        fatal.fatal = True
        raise fatal
    if res.error is None:
        report.written += res.rows
        return False
    if not res.charged:
        return True
    attempts[res.key] = attempts.get(res.key, 0) + 1
    n = attempts[res.key]
    if res.retryable and n <= opts.max_retries:
        report.retries += 1
        return True
    message = f"{ERROR_PREFIX} after {n} attempt{'s' if n > 1 else ''}: {res.error}"
    write_failure(runner, res.key, message)
    report.failed_units += 1
    cell = runner.plan.cell(res.key[0])
    report.failures.append(f"{cell.label if cell else res.key[0]}: {len(res.key[1])} samples: {message}")
    return False


def _units(keys: list[UnitKey]) -> dict[str, int]:
    out: dict[str, int] = {}
    for cell, idx in keys:
        out[cell] = out.get(cell, 0) + len(idx)
    return out


def _progress_bar(runner: UnitRunner, keys: list[UnitKey], quiet: bool, workers: int) -> ProgressBar:
    """The run's progress bar: each cell's cost per sample, and the live cost model of its time left."""
    units = _units(keys)
    if quiet or not keys:
        return ProgressBar(units, quiet)
    from robbench.run.eta import LiveCost, cell_weights

    cells = [c for c in runner.plan.cells if c.id in {k[0] for k in keys}]
    try:
        rows = runner.results.read_rows(current_only=True)
    except (RobbenchError, OSError, ValueError):  # the estimate never stops a run; a bad shard is reported elsewhere
        rows = None
    return ProgressBar(units, quiet, cell_weights(cells, rows), LiveCost(cells, units, rows, workers))


def execute(
    runner: UnitRunner,
    keys: list[UnitKey],
    opts: ExecOptions,
    *,
    device: str = "auto",
    threads: int | None = None,
    quiet: bool = False,
    checks: bool = False,
) -> ExecReport:
    """Run the units ``keys`` on the backend ``opts`` names; retries, failure rows, stage order.

    ``runner`` is the coordinator's unit runner (the in-process backend runs the units on it; the
    others take plan, data and results directory from it). ``checks``: a worker pool also computes
    the compute checks beside the units, answered in ``report.checks``; the other backends leave
    them to the caller.
    """
    report = ExecReport()
    backend = make_backend(runner, keys, opts, device=device, threads=threads, checks=checks)
    report.backend = backend.name
    if opts.max_minutes is not None:
        if not hasattr(backend, "deadline"):
            raise ExecutorError(
                "--max-minutes applies to local runs", hint="cluster jobs have --timeout-min (they requeue)"
            )
        backend.deadline = time.monotonic() + 60 * opts.max_minutes
    attempts: dict[UnitKey, int] = {}
    progress = _progress_bar(runner, keys, quiet, opts.workers if opts.executor == "local" else 1)
    try:
        with progress.running():
            all_stages = stages(runner, keys)
            for i, stage in enumerate(all_stages):
                pending = stage
                while pending:
                    report.rounds.append(len(pending))
                    results = backend.run_round(pending, progress)
                    ran = {r.key for r in results}
                    report.units_left += sum(k not in ran for k in pending)
                    pending = [r.key for r in results if _settle(runner, r, opts, attempts, report)]
                if report.units_left:  # the time limit: later stages are left for the resume too
                    report.units_left += sum(len(s) for s in all_stages[i + 1 :])
                    break
    finally:
        backend.close()
        report.job_ids = list(getattr(backend, "job_ids", []))
        report.checks = dict(getattr(backend, "check_records", {}))
    return report
