"""Slurm through submitit (``--executor submitit``, the ``submitit`` extra): units grouped into jobs.

The units are grouped into ``shards`` jobs (a job array), tracked until done, and the failed ones
resubmitted by the driver. ``cluster="local"`` runs the same jobs as local subprocesses (submitit's
LocalExecutor: the tests use it), ``"debug"`` in this process; ``"auto"`` (default) is Slurm, refused
where no Slurm is found. A job killed at its time limit or preempted is requeued by Slurm and continues
with the units it had not finished (the job skips units whose rows exist).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from robbench.results.schema import FAILED_PREFIX
from robbench.run.backends.base import Progress, UnitKey, UnitResult, WorkerSpec, setup_failure
from robbench.run.backends.worker import run_unit_safely, worker_runner
from robbench.run.options import DEFAULT_SHARDS, DEFAULT_TIMEOUT_MIN, ExecOptions, ExecutorError
from robbench.run.unit import UnitRunner


class UnitJob:
    """A submitit job: run a group of units (split over the job's tasks), skipping finished ones.

    Checkpointable: when Slurm times out or preempts the job, submitit requeues it with the same
    arguments and it continues with the units whose rows are still missing.
    """

    def __call__(self, spec: WorkerSpec, keys: list[UnitKey]) -> list[UnitResult]:
        device = None
        rank, ntasks = 0, 1
        try:
            import submitit

            env = submitit.JobEnvironment()
            rank, ntasks = env.global_rank, env.num_tasks
            if ntasks > 1 and spec.device in ("auto", "cuda"):
                import torch

                if torch.cuda.is_available():
                    device = f"cuda:{env.local_rank % torch.cuda.device_count()}"
        except RuntimeError:  # not inside a submitit job (called directly)
            pass
        mine = keys[rank::ntasks]
        try:
            ex = worker_runner(spec, device=device)
        except Exception as exc:
            bad = setup_failure(mine[0] if mine else ("", ()), exc)
            return [UnitResult(k, error=bad.error, retryable=False, fatal=True, hint=bad.hint) for k in mine]
        done = _stored_samples(ex, {k[0] for k in mine})
        ids = ex.plan.sample_ids
        out = []
        for key in mine:
            if all(ids[i] in done.get(key[0], ()) for i in key[1]):
                out.append(UnitResult(key, rows=0))
                continue
            out.append(run_unit_safely(ex, key, raise_fatal=False))
        return out

    def checkpoint(self, spec: WorkerSpec, keys: list[UnitKey]) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, spec, keys)


def _stored_samples(ex: UnitRunner, cells: set[str]) -> dict[str, set[str]]:
    """cell -> stored sample ids (read-only: a worker never quarantines; unreadable shards are ignored)."""
    import pyarrow.parquet as pq

    out: dict[str, set[str]] = {}
    for cell in cells:
        folder = ex.results.rows_dir / cell
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.parquet")):
            if path.name.startswith((".", FAILED_PREFIX)):
                continue
            try:
                col = pq.read_table(path, columns=["sample_id"]).column("sample_id").to_pylist()
            except Exception:
                continue
            out.setdefault(cell, set()).update(col)
    return out


def _split(keys: Sequence[UnitKey], n: int) -> list[list[UnitKey]]:
    """At most ``n`` contiguous, non-empty groups with about equal numbers of samples (order kept)."""
    n = max(1, min(n, len(keys)))
    total = sum(len(k[1]) for k in keys)
    groups: list[list[UnitKey]] = []
    cur: list[UnitKey] = []
    acc = 0
    for i, k in enumerate(keys):
        later_groups = n - len(groups) - 1
        if cur and (len(keys) - i <= later_groups or acc + len(k[1]) / 2 > (len(groups) + 1) * total / n):
            groups.append(cur)
            cur = []
        cur.append(k)
        acc += len(k[1])
    if cur:
        groups.append(cur)
    return groups


class SlurmBackend:
    """Groups units into jobs (a Slurm job array), polls them, reports per-unit results."""

    name = "submitit"

    def __init__(self, spec: WorkerSpec, opts: ExecOptions, folder: Path, ex: UnitRunner) -> None:
        import submitit

        self.spec = spec
        self.opts = opts
        self.ex = ex
        self.shards = opts.shards or DEFAULT_SHARDS
        cluster = None if opts.cluster == "auto" else opts.cluster
        folder.mkdir(parents=True, exist_ok=True)
        try:
            self.submitter = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        except RuntimeError as exc:
            raise ExecutorError(
                f"submitit found no cluster to submit to ({exc})",
                hint="run on a Slurm login node (sbatch on PATH), or pass --cluster local to run "
                "the jobs as local processes",
            ) from None
        self.tasks = max(1, opts.gpus_per_job or 1)
        params: dict[str, Any] = {
            "name": f"robbench-{ex.plan.suite.name}",
            "timeout_min": opts.timeout_min or DEFAULT_TIMEOUT_MIN,
            "gpus_per_node": opts.gpus_per_job,
            "cpus_per_task": opts.cpus_per_job,
            "mem_gb": opts.mem_gb,
            "tasks_per_node": self.tasks,
            "slurm_partition": opts.slurm_partition,
            "slurm_account": opts.slurm_account,
        }
        try:
            self.submitter.update_parameters(**{k: v for k, v in params.items() if v is not None})
        except (NameError, ValueError, AssertionError) as exc:
            raise ExecutorError(f"submitit rejected the job parameters: {exc}") from None
        self.job_ids: list[str] = []

    def run_round(self, keys: Sequence[UnitKey], progress: Progress) -> list[UnitResult]:
        groups = _split(keys, self.shards)
        job = UnitJob()
        try:
            with self.submitter.batch():
                jobs = [self.submitter.submit(job, self.spec, g) for g in groups]
        except Exception as exc:
            raise ExecutorError(
                f"submitting {len(groups)} jobs failed: {type(exc).__name__}: {exc}",
                hint="check the Slurm options (--slurm-partition, --gpus-per-job, --timeout-min)",
            ) from None
        self.job_ids.extend(j.job_id for j in jobs)
        pending = dict(zip(jobs, groups, strict=True))
        results: dict[UnitKey, UnitResult] = {}
        crashed: list[str] = []
        try:
            while pending:
                for j in [j for j in pending if j.done()]:
                    group = pending.pop(j)
                    try:
                        per_task = j.results()
                        for res in (r for task in per_task for r in task):
                            if res.fatal:  # no other unit can succeed either: cancel the rest
                                for other in pending:
                                    other.cancel(check=False)
                                return [res]
                            results[res.key] = res
                        for k in group:
                            progress.advance(len(k[1]), k[0])
                    except Exception as exc:
                        msg = f"job {j.job_id} failed: {_short(exc)}"
                        crashed.append(msg)
                        results.update(self._after_crash(group, msg))
                if pending:
                    time.sleep(self.opts.poll_s)
        except KeyboardInterrupt:
            for j in pending:
                j.cancel(check=False)
            raise
        if crashed and len(crashed) == len(groups) and not any(r.error is None for r in results.values()):
            raise ExecutorError(
                f"all {len(groups)} jobs failed and none finished a unit; first: {crashed[0]}",
                hint=f"read the job logs in {self.submitter.folder}; the environment of the jobs is probably broken",
            )
        return [results[k] for k in keys]

    def _after_crash(self, group: list[UnitKey], msg: str) -> dict[UnitKey, UnitResult]:
        """Units of a crashed job: finished ones are fine; per task, the first unfinished one is charged."""
        done = _stored_samples(self.ex, {k[0] for k in group})
        ids = self.ex.plan.sample_ids
        out: dict[UnitKey, UnitResult] = {}
        for rank in range(self.tasks):
            charged = False
            for key in group[rank :: self.tasks]:
                if all(ids[i] in done.get(key[0], ()) for i in key[1]):
                    out[key] = UnitResult(key, rows=len(key[1]))
                else:
                    out[key] = UnitResult(key, error=msg, charged=not charged)
                    charged = True
        return out

    def close(self) -> None:
        return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    tail = next((ln.strip() for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1] if lines else "")
    return f"{type(exc).__name__}: {tail[:300]}"
