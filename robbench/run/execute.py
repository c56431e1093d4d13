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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robbench.errors import RobbenchError
from robbench.results.schema import FAILED_PREFIX
from robbench.run.backends.base import UnitKey, unit_key, worker_spec
from robbench.run.backends.inprocess import InProcess
from robbench.run.backends.pool import ProcessPool
from robbench.run.backends.slurm import Submitit
from robbench.run.options import ExecOptions
from robbench.run.progress import _Progress

if TYPE_CHECKING:
    from robbench.results.store import ResultsDir
    from robbench.run.plan import Unit
    from robbench.run.unit import Executor


ERROR_PREFIX = "unit failed"


# ---------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------
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

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "units_submitted": sum(self.rounds),
            "rounds": self.rounds,
            "retries": self.retries,
            "failed_units": self.failed_units,
            "job_ids": self.job_ids[:1000],
            "checks_in_workers": sorted(self.checks),
        }


def clear_failed(rd: ResultsDir) -> int:
    """Delete the failure shards of earlier runs (call under the lock) so their units run again."""
    n = 0
    if rd.rows_dir.is_dir():
        for p in rd.rows_dir.glob(f"*/{FAILED_PREFIX}*.parquet"):
            p.unlink()
            n += 1
    return n


def failure_rows(ex: Executor, key: UnitKey, message: str) -> list[dict[str, Any]]:
    """One row per sample of a unit that failed: identity columns, the error, nothing claimed."""
    from robbench.core.seeding import derive_seed

    cell = next(c for c in ex.plan.cells if c.id == key[0])
    data = ex.data
    seed = ex.plan.suite.seed
    rows = []
    for i in key[1]:
        sid = data.ids[i]
        d = cell.describe()
        rows.append(
            {
                "cell": cell.id,
                "sample_id": sid,
                "sample_index": ex.plan.sample_positions[i],
                "label": int(data.y[i]),
                "defense": d["defense"],
                "defense_name": d["defense_name"],
                "stochastic": cell.stochastic,
                "attack": d["attack"],
                "attack_name": d["attack_name"],
                "gradient": d["gradient"],
                "randomness": cell.randomness,
                "eot": cell.eot,
                "norm": d["norm"],
                "eps": d["eps"],
                "threat": d["threat"],
                "seed": derive_seed(seed, getattr(cell, "seed_key", cell.id), "attack", sid),
                "draws": cell.draws,
                "clean_correct": False,
                "clean_correct_draws": [],
                "adv_correct": False,
                "adv_correct_draws": [],
                "in_ball": None,
                "error": message,
            }
        )
    return rows


def _write_failure(ex: Executor, key: UnitKey, message: str) -> None:
    from robbench.core.identity import stable_hash

    rows = failure_rows(ex, key, message)
    first = ex.plan.sample_positions[key[1][0]]
    ex.results.write_shard(key[0], f"{FAILED_PREFIX}{first:08d}-{stable_hash([r['sample_id'] for r in rows], 8)}", rows)


def _stages(ex: Executor, keys: list[UnitKey]) -> list[list[UnitKey]]:
    """Units grouped into stages that must run in order (cascade: attack k after attacks < k)."""
    if not getattr(ex.plan.suite.evaluation, "cascade", False):
        return [keys] if keys else []
    cells = {c.id: c for c in ex.plan.cells}
    order = {a.id: i for i, a in enumerate(ex.plan.suite.attacks)}
    by_stage: dict[int, list[UnitKey]] = {}
    for k in keys:
        by_stage.setdefault(order.get(cells[k[0]].attack.id, 0), []).append(k)
    return [by_stage[s] for s in sorted(by_stage)]


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def execute(
    ex: Executor,
    units: list[Unit],
    opts: ExecOptions,
    *,
    device: str = "auto",
    threads: int | None = None,
    quiet: bool = False,
    checks: bool = False,
) -> ExecReport:
    """Run ``units`` with the executor ``opts`` names; retries, failure rows, stage order.

    ``ex`` is the coordinator's in-process runner (it runs the units itself for the in-process
    executor, and supplies plan, data and results directory otherwise). ``checks``: a worker pool
    also computes the compute checks (:mod:`robbench.run.checks`) beside the units, answered in
    ``report.checks``; the other backends leave them to the caller.
    """
    keys = [unit_key(u) for u in units]
    report = ExecReport()
    if opts.executor == "local" and opts.workers == 1:
        backend: Any = InProcess(ex)
    elif opts.executor == "local":
        per_worker = threads or max(1, cpu_count() // opts.workers)
        backend = ProcessPool(worker_spec(ex, device, opts, per_worker), opts.workers)
        if keys:
            if checks:
                from robbench.run.checks.compute import checked_defenses

                backend.queue_checks(checked_defenses(ex.plan))
            backend.start(len(keys) + len(backend.check_tasks))
            # load (or train, once) the models here, not in every worker at the same time; the
            # workers meanwhile start up and load the data
            try:
                _ = ex.ctx
                for spec in ex.plan.suite.defenses:
                    ex.defense(spec)
            except BaseException:
                backend.aborted = True  # close() terminates the workers instead of waiting for them
                backend.close()
                raise
    else:
        folder = Path(opts.folder) if opts.folder else ex.results.root / ".submitit"
        backend = Submitit(worker_spec(ex, device, opts, threads or opts.cpus_per_job), opts, folder.resolve(), ex)
    report.backend = backend.name
    attempts: dict[UnitKey, int] = {}
    progress = _Progress(sum(len(k[1]) for k in keys), quiet)
    try:
        with progress.running():
            for stage in _stages(ex, keys):
                pending = stage
                while pending:
                    report.rounds.append(len(pending))
                    retry: list[UnitKey] = []
                    for res in backend.run_round(pending, progress):
                        if res.fatal:
                            fatal = RobbenchError(res.error or "a worker failed", hint=res.hint)
                            fatal.fatal = True
                            raise fatal
                        if res.error is None:
                            report.written += res.rows
                            report.failures.extend(res.failures)
                            continue
                        if not res.charged:
                            retry.append(res.key)
                            continue
                        attempts[res.key] = attempts.get(res.key, 0) + 1
                        if res.retryable and attempts[res.key] <= opts.max_retries:
                            report.retries += 1
                            retry.append(res.key)
                            continue
                        n = attempts[res.key]
                        message = f"{ERROR_PREFIX} after {n} attempt{'s' if n > 1 else ''}: {res.error}"
                        _write_failure(ex, res.key, message)
                        report.failed_units += 1
                        label = next((c.label for c in ex.plan.cells if c.id == res.key[0]), res.key[0])
                        report.failures.append(f"{label}: {len(res.key[1])} samples: {message}")
                    pending = retry
    finally:
        backend.close()
        report.job_ids = list(getattr(backend, "job_ids", []))
        report.checks = dict(getattr(backend, "check_records", {}))
    return report
