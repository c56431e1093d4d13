"""Executor options: where a run's units execute, how failures are retried, what is installed.

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

import importlib.util
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from robbench.errors import RobbenchError

if TYPE_CHECKING:
    pass


#: executor name -> the pip extra that provides it (None: always available)
EXECUTORS: dict[str, str | None] = {"local": None, "submitit": "submitit"}


DEFAULT_SHARDS = 8


DEFAULT_TIMEOUT_MIN = 240


class ExecutorError(RobbenchError):
    """An executor that is not installed, options that do not fit it, or a cluster that rejects jobs."""


class ExecOptions(BaseModel):
    """How a run executes. Nothing here changes rows (except ``compile``/``channels_last`` at float round-off)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    executor: str = "local"
    #: local: worker processes (1 = in this process)
    workers: int = Field(default=1, ge=1, le=1024)
    #: submitit: number of jobs the units are grouped into (default 8)
    shards: int | None = Field(default=None, ge=1, le=100_000)
    #: submitit: auto (Slurm; refused where none is found) | slurm | local (subprocesses) | debug (in process)
    cluster: Literal["auto", "slurm", "local", "debug"] = "auto"
    slurm_partition: str | None = None
    slurm_account: str | None = None
    gpus_per_job: int | None = Field(default=None, ge=0, le=64)
    cpus_per_job: int | None = Field(default=None, ge=1, le=1024)
    mem_gb: float | None = Field(default=None, gt=0)
    timeout_min: int | None = Field(default=None, ge=1, le=60 * 24 * 30)
    #: extra attempts for a unit that raised (RobbenchErrors are not retried)
    max_retries: int = Field(default=2, ge=0, le=100)
    #: submitit log and pickle folder (default OUT/.submitit)
    folder: str | None = None
    #: seconds between polls of submitted jobs
    poll_s: float = Field(default=2.0, gt=0, le=600)
    #: torch.compile the classifier and the generative models (measured: see benchmarks/RESULTS.md)
    compile: bool = False
    #: channels-last memory format for the classifier and generative models
    channels_last: bool = False
    #: local: start no new unit after this many minutes; the units in flight finish and are stored, the
    #: rest is left for the next run of the same command (a resume)
    max_minutes: float | None = Field(default=None, gt=0, le=60 * 24 * 365)


_SUBMITIT_ONLY = {
    "shards": "--shards",
    "slurm_partition": "--slurm-partition",
    "slurm_account": "--slurm-account",
    "gpus_per_job": "--gpus-per-job",
    "cpus_per_job": "--cpus-per-job",
    "mem_gb": "--mem-gb",
    "timeout_min": "--timeout-min",
    "folder": "--submitit-folder",
}


def installed(extra: str) -> bool:
    """True when the module behind a pip extra can be imported."""
    try:
        return importlib.util.find_spec(extra) is not None
    except (ImportError, ValueError):
        return False


def _install_hint(extra: str) -> str:
    return f"pip install 'robbench[{extra}]'"


def exec_options(options: ExecOptions | dict[str, Any] | None = None, **kwargs: Any) -> ExecOptions:
    """Validated :class:`ExecOptions` from a model, a dict or keywords; checks executor and extras.

    Raises :class:`ExecutorError` naming the option and the fix (an unknown executor, a Slurm option
    without ``--executor submitit``, submitit not installed).
    """
    if isinstance(options, ExecOptions):
        raw = options.model_dump(exclude_unset=True)
    else:
        raw = dict(options or {})
    raw.update({k: v for k, v in kwargs.items() if v is not None})
    try:
        opts = ExecOptions.model_validate(raw)
    except ValidationError as exc:
        from robbench.core.components import format_validation_error

        raise ExecutorError(format_validation_error(exc, "execution", ExecOptions)) from None
    if opts.executor not in EXECUTORS:
        raise ExecutorError(f"unknown executor {opts.executor!r}", hint=f"use one of: {', '.join(EXECUTORS)}")
    given = [flag for name, flag in _SUBMITIT_ONLY.items() if getattr(opts, name) is not None]
    if opts.cluster != "auto":
        given.append("--cluster")
    if opts.executor != "submitit" and given:
        hint = "add --executor submitit"
        if not installed("submitit"):
            hint += f" (it needs the submitit extra: {_install_hint('submitit')})"
        raise ExecutorError(
            f"{', '.join(given)} {'is an option' if len(given) == 1 else 'are options'} of the "
            f"submitit (Slurm) executor, not of {opts.executor!r}",
            hint=hint,
        )
    if opts.executor == "submitit" and opts.workers != 1:
        raise ExecutorError(
            "--workers is an option of the local executor; submitit spreads work over jobs",
            hint="use --shards N (jobs) with --executor submitit",
        )
    extra = EXECUTORS[opts.executor]
    if extra is not None and not installed(extra):
        raise ExecutorError(
            f"executor {opts.executor!r} needs the {extra!r} package, which is not installed",
            hint=f"{_install_hint(extra)}, or run with --executor local",
        )
    if opts.executor == "submitit" and opts.cluster == "auto" and not slurm_found():
        # submitit's own "auto" would quietly start every job as a local process (on a login node)
        raise ExecutorError(
            "--executor submitit found no Slurm cluster here (no srun on PATH)",
            hint="run on a Slurm login node; to run the jobs as local processes instead, pass "
            "--cluster local (or --cluster debug: in this process)",
        )
    return opts


def slurm_found() -> bool:
    """True when submitit would submit to Slurm (its Slurm executor finds ``srun`` on PATH)."""
    try:
        from submitit.slurm.slurm import SlurmExecutor

        return SlurmExecutor.affinity() > 0
    except Exception:
        return True
