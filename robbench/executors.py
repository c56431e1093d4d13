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
        compute the false-robustness checks of :mod:`robbench.checks`, one task per defense queued
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
import os
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from robbench.errors import RobbenchError

if TYPE_CHECKING:
    from robbench.results import ResultsDir
    from robbench.runner import Executor, Plan, Unit

#: executor name -> the pip extra that provides it (None: always available)
EXECUTORS: dict[str, str | None] = {"local": None, "submitit": "submitit"}
#: shard-name prefix of failure rows (deleted and retried by the next run)
FAILED_PREFIX = "failed-"
ERROR_PREFIX = "unit failed"
DEFAULT_SHARDS = 8
DEFAULT_TIMEOUT_MIN = 240

UnitKey = tuple[str, tuple[int, ...]]  # (cell id, sample positions in the selected subset)


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


_SUBMITIT_ONLY = {"shards": "--shards", "slurm_partition": "--slurm-partition", "slurm_account": "--slurm-account",
                  "gpus_per_job": "--gpus-per-job", "cpus_per_job": "--cpus-per-job", "mem_gb": "--mem-gb",
                  "timeout_min": "--timeout-min", "folder": "--submitit-folder"}


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
        from robbench.components import format_validation_error

        raise ExecutorError(format_validation_error(exc, "execution")) from None
    if opts.executor not in EXECUTORS:
        raise ExecutorError(f"unknown executor {opts.executor!r}", hint=f"use one of: {', '.join(EXECUTORS)}")
    given = [flag for name, flag in _SUBMITIT_ONLY.items() if getattr(opts, name) is not None]
    if opts.cluster != "auto":
        given.append("--cluster")
    if opts.executor != "submitit" and given:
        hint = "add --executor submitit"
        if not installed("submitit"):
            hint += f" (it needs the submitit extra: {_install_hint('submitit')})"
        raise ExecutorError(f"{', '.join(given)} {'is an option' if len(given) == 1 else 'are options'} of the "
                            f"submitit (Slurm) executor, not of {opts.executor!r}", hint=hint)
    if opts.executor == "submitit" and opts.workers != 1:
        raise ExecutorError("--workers is an option of the local executor; submitit spreads work over jobs",
                            hint="use --shards N (jobs) with --executor submitit")
    extra = EXECUTORS[opts.executor]
    if extra is not None and not installed(extra):
        raise ExecutorError(f"executor {opts.executor!r} needs the {extra!r} package, which is not installed",
                            hint=f"{_install_hint(extra)}, or run with --executor local")
    if opts.executor == "submitit" and opts.cluster == "auto" and not slurm_found():
        # submitit's own "auto" would quietly start every job as a local process (on a login node)
        raise ExecutorError("--executor submitit found no Slurm cluster here (no srun on PATH)",
                            hint="run on a Slurm login node; to run the jobs as local processes instead, pass "
                                 "--cluster local (or --cluster debug: in this process)")
    return opts


def slurm_found() -> bool:
    """True when submitit would submit to Slurm (its Slurm executor finds ``srun`` on PATH)."""
    try:
        from submitit.slurm.slurm import SlurmExecutor

        return SlurmExecutor.affinity() > 0
    except Exception:  # noqa: BLE001 - another submitit layout: its own detection decides
        return True


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
    """The compute checks of one defense (:func:`robbench.checks.defense_checks`), run by a pool worker
    beside the units so that they do not add to the run's serial part."""

    display: str


@dataclass
class CheckResult:
    display: str
    records: list[dict[str, Any]]


def _run_check_task(ex: Executor | None, task: CheckTask, setup_error: BaseException | None) -> CheckResult:
    from robbench.checks import defense_checks_safely, not_computed

    if ex is None:
        why = setup_error.message if isinstance(setup_error, RobbenchError) else f"{type(setup_error).__name__}: {setup_error}"
        return CheckResult(task.display, [not_computed(task.display, f"skipped: {why}")])
    return CheckResult(task.display, defense_checks_safely(ex.plan, ex, task.display))


def unit_key(unit: Unit) -> UnitKey:
    return (unit.cell.id, tuple(unit.indices))


def _abs(p: str | None) -> str | None:
    return str(Path(p).expanduser().resolve()) if p else None


def worker_spec(ex: Executor, device: str, opts: ExecOptions, threads: int | None) -> WorkerSpec:
    plan = ex.plan
    return WorkerSpec(suite_text=plan.suite_text, source=plan.suite.name, out=str(ex.results.root.resolve()),
                      device=device, batch_size=ex.batch_size, data_dir=_abs(plan.data_dir),
                      zoo_dir=_abs(plan.zoo_dir), threads=threads, compile=opts.compile,
                      channels_last=opts.channels_last)


_WORKER_CACHE: dict[WorkerSpec, Executor] = {}


def worker_executor(spec: WorkerSpec, device: str | None = None) -> Executor:
    """The in-process runner of a worker, built once per process and spec."""
    if spec in _WORKER_CACHE and device is None:
        return _WORKER_CACHE[spec]
    import torch

    from robbench.results import ResultsDir
    from robbench.runner import Executor, Plan, resolve_device
    from robbench.suite import parse_suite

    if spec.threads:
        torch.set_num_threads(spec.threads)
    suite = parse_suite(spec.suite_text, spec.source)
    plan = Plan(suite, suite_text=spec.suite_text, data_dir=spec.data_dir, zoo_dir=spec.zoo_dir)
    ex = _make_executor(plan, ResultsDir(spec.out), resolve_device(device or spec.device), spec.batch_size,
                        spec.compile, spec.channels_last)
    _WORKER_CACHE[spec] = ex
    return ex


def _make_executor(plan: Plan, rd: ResultsDir, device: Any, batch_size: int, compile: bool,
                   channels_last: bool) -> Executor:
    from robbench.runner import Executor

    ex = Executor(plan, rd, device, batch_size, quiet=True)
    if compile or channels_last:
        ex.accel = {"compile": compile, "channels_last": channels_last}  # read by Executor.ctx / defense()
    return ex


def run_unit_safely(ex: Executor, key: UnitKey, progress: Callable[[int], None] | None = None, *,
                    raise_fatal: bool = True) -> UnitResult:
    """Run one unit; any exception becomes an error result (``RobbenchError``: not retryable).

    A fatal ``RobbenchError`` (every unit would fail alike) is raised, or, in a worker process
    (``raise_fatal=False``), answered as a fatal result that the coordinator raises.
    """
    from robbench.runner import Unit

    cells = {c.id: c for c in ex.plan.cells}
    if key[0] not in cells:
        return UnitResult(key, error=f"cell {key[0]} is not in this worker's plan (different robbench version?)",
                          retryable=False)
    before = len(ex.failures)
    try:
        rows = ex.run_unit(Unit(cells[key[0]], list(key[1])), progress=progress)
    except RobbenchError as exc:
        if exc.fatal:  # e.g. a full results disk: every other unit would fail the same way
            if raise_fatal:
                raise
            return UnitResult(key, error=exc.message, retryable=False, fatal=True, hint=exc.hint)
        return UnitResult(key, error=exc.message, retryable=False)
    except Exception as exc:  # noqa: BLE001 - a unit's crash must not stop the others
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
    except Exception:  # noqa: BLE001
        pass


# ---------------------------------------------------------------------------------------------
# backends: run one round of units and answer one result per unit
# ---------------------------------------------------------------------------------------------
class _Progress:
    def __init__(self, total: int, quiet: bool) -> None:
        self.total = total
        self._prog: Any = None
        self._task: Any = None
        self.quiet = quiet

    @contextmanager
    def running(self) -> Iterator[_Progress]:
        if self.quiet or not self.total:
            yield self
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TimeRemainingColumn(), transient=False) as prog:
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


class InProcess:
    """Units run one after another in this process (the default)."""

    name = "local"

    def __init__(self, ex: Executor) -> None:
        self.ex = ex

    def run_round(self, keys: Sequence[UnitKey], progress: _Progress) -> list[UnitResult]:
        labels = {c.id: c.label for c in self.ex.plan.cells}
        out = []
        for key in keys:
            progress.describe(labels.get(key[0], key[0]))
            out.append(run_unit_safely(self.ex, key, progress=progress.advance))
        return out

    def close(self) -> None:
        return None


def _slot_device(spec: WorkerSpec, slot: int) -> str | None:
    """Worker ``slot``'s device: with several GPUs and device auto/cuda, GPU ``slot % count``."""
    if spec.device not in ("auto", "cuda"):
        return None
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return f"cuda:{slot % n}" if n > 1 else None


def _pool_worker_main(spec: WorkerSpec, conn: Any, slot: int = 0,
                      env: dict[str, str] | None = None) -> None:  # pragma: no cover - child process
    """A pool worker: build the plan and load the data at once (while the coordinator loads the
    models), then receive unit keys or :class:`CheckTask` s and answer their results; ``None`` ends it.

    ``env``: the coordinator's environment when it started this worker (a fork server's children
    would otherwise have the server's, from when it started: e.g. not a later run's
    ``--deterministic`` flag).
    """
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    ex: Executor | None = None
    setup_error: BaseException | None = None
    try:
        ex = worker_executor(spec, device=_slot_device(spec, slot))
        _ = ex.data
    except Exception as exc:  # noqa: BLE001 - a worker that cannot build the plan cannot run any unit
        ex, setup_error = None, exc
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        if isinstance(msg, CheckTask):
            conn.send(_run_check_task(ex, msg, setup_error))
            continue
        if ex is None:
            assert setup_error is not None
            conn.send(_setup_failure(msg, setup_error))
            continue
        conn.send(run_unit_safely(ex, msg, raise_fatal=False))


@dataclass(eq=False)
class _Worker:
    proc: Any
    conn: Any
    key: UnitKey | CheckTask | None = None
    slot: int = 0


def _start_worker(ctx: Any, spec: WorkerSpec, slot: int) -> _Worker:
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_pool_worker_main, args=(spec, child, slot, dict(os.environ)), daemon=True,
                       name=f"robbench-worker-{slot}")
    proc.start()
    child.close()
    return _Worker(proc, parent, slot=slot)


#: modules the fork server imports once, so that each worker it forks starts with them loaded
FORKSERVER_PRELOAD = ["__main__", "robbench.runner"]


def _mp_context() -> Any:
    """The multiprocessing context of the pool: a fork server where the platform has one, else spawn.

    The fork server imports torch and the runner once; each worker is then a fork of it, without
    the ~2 s ``import torch`` a spawned worker pays (a 2-core machine pays it in wall time). The
    server never runs an op or touches CUDA, so forking it is safe. Workers take the coordinator's
    current environment (see :func:`_pool_worker_main`), as spawned ones would.
    """
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():  # pragma: no cover - Windows
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(FORKSERVER_PRELOAD)
    return ctx


def prestart_workers() -> None:
    """Start the pool's fork server now, before torch is imported and the suite is planned here, so
    that its imports overlap the coordinator's (the CLI calls this for ``--workers N``). It returns
    at once; where there is no fork server it does nothing."""
    ctx = _mp_context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


class ProcessPool:
    """``workers`` processes (forked by a fork server, see :func:`_mp_context`) fed one unit at a
    time; a dead worker is replaced.

    With several GPUs and ``--device auto`` or ``cuda``, worker ``i`` uses GPU ``i % count``.
    """

    name = "local-pool"

    def __init__(self, spec: WorkerSpec, workers: int) -> None:
        self.spec = spec
        self.n = workers
        self.ctx = _mp_context()
        self.workers: list[_Worker] = []
        self.answered = 0  # results received from workers
        self.deaths = 0
        self.aborted = False
        #: check tasks queued ahead of the next round's units, and the records answered, by defense
        self.check_tasks: list[CheckTask] = []
        self.check_records: dict[str, list[dict[str, Any]]] = {}

    def start(self, jobs: int) -> None:
        """Spawn the workers for ``jobs`` queued items now (at most ``workers``): their start-up
        (interpreter, ``import torch``, plan, data) then overlaps the coordinator's."""
        while len(self.workers) < min(self.n, jobs):
            self.workers.append(self._start(len(self.workers)))

    def queue_checks(self, displays: Sequence[str]) -> None:
        """Run the compute checks of these defenses in the next round, ahead of its units (a long
        item queued last would leave the other workers idle at the end of the run)."""
        self.check_tasks.extend(CheckTask(d) for d in displays)

    def _start(self, slot: int) -> _Worker:
        return _start_worker(self.ctx, self.spec, slot)

    def run_round(self, keys: Sequence[UnitKey], progress: _Progress) -> list[UnitResult]:
        from multiprocessing.connection import wait

        queue: deque[UnitKey | CheckTask] = deque([*self.check_tasks, *keys])
        self.check_tasks = []
        self.start(len(queue))
        results: dict[UnitKey, UnitResult] = {}
        idle = list(self.workers)
        busy: list[_Worker] = []
        while queue or busy:
            while idle and queue:
                w = idle.pop()
                w.key = queue.popleft()
                w.conn.send(w.key)
                busy.append(w)
            wait([w.conn for w in busy] + [w.proc.sentinel for w in busy])
            for w in list(busy):
                res: UnitResult | CheckResult | None = None
                if w.conn.poll():
                    try:
                        res = w.conn.recv()
                    except (EOFError, OSError):
                        res = None
                if isinstance(res, CheckResult):
                    self.check_records[res.display] = res.records
                    busy.remove(w)
                    idle.append(w)
                elif res is not None:
                    self.answered += 1
                    if res.fatal:  # no other unit can succeed: stop now (close() terminates the others)
                        self.aborted = True
                        return [res]
                    results[res.key] = res
                    progress.advance(len(res.key[1]))
                    busy.remove(w)
                    idle.append(w)
                elif not w.proc.is_alive():
                    assert w.key is not None
                    self.deaths += 1
                    if self.answered == 0 and self.deaths >= 2 * self.n:
                        raise ExecutorError(
                            f"{self.deaths} worker processes died before answering once (exit code {w.proc.exitcode})",
                            hint="run with --workers 1 to see the error; from a script, start the run under "
                                 "`if __name__ == '__main__':` (every worker process imports the main module)")
                    died = f"worker process died (exit code {w.proc.exitcode})"
                    if isinstance(w.key, CheckTask):
                        from robbench.checks import not_computed

                        self.check_records[w.key.display] = [not_computed(w.key.display, f"failed: {died}")]
                    else:
                        results[w.key] = UnitResult(w.key, error=died)
                    busy.remove(w)
                    w.conn.close()
                    fresh = self._start(w.slot)
                    self.workers[self.workers.index(w)] = fresh
                    idle.append(fresh)
        return [results[k] for k in keys]

    def close(self) -> None:
        for w in self.workers:
            if self.aborted:
                w.proc.terminate()
                continue
            try:
                w.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for w in self.workers:
            w.proc.join(timeout=30)
            if w.proc.is_alive():
                w.proc.terminate()
                w.proc.join(timeout=5)
            w.conn.close()
        self.workers = []


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
            ex = worker_executor(spec, device=device)
        except Exception as exc:  # noqa: BLE001 - e.g. the data or a checkpoint missing on this node
            bad = _setup_failure(mine[0] if mine else ("", ()), exc)
            return [UnitResult(k, error=bad.error, retryable=False, fatal=True, hint=bad.hint) for k in mine]
        done = _stored_samples(ex, {k[0] for k in mine})
        ids = _sample_ids(ex.plan)
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


def _setup_failure(key: UnitKey, exc: BaseException) -> UnitResult:
    """The answer of a worker whose plan could not be built (fatal: no unit can run there)."""
    import socket

    where = f"worker on {socket.gethostname()} (pid {os.getpid()})"
    if isinstance(exc, RobbenchError):
        return UnitResult(key, error=f"{where}: {exc.message}", retryable=False, fatal=True, hint=exc.hint)
    return UnitResult(key, error=f"{where}: {type(exc).__name__}: {exc}", retryable=False, fatal=True)


def _sample_ids(plan: Plan) -> list[str]:
    return [f"{plan.dataset.name}/{plan.suite.data.split}/{p}" for p in plan.sample_positions]


def _stored_samples(ex: Executor, cells: set[str]) -> dict[str, set[str]]:
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
            except Exception:  # noqa: BLE001 - torn shard: the coordinator repairs it
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


class Submitit:
    """Groups units into jobs (a Slurm job array), polls them, reports per-unit results."""

    name = "submitit"

    def __init__(self, spec: WorkerSpec, opts: ExecOptions, folder: Path, ex: Executor) -> None:
        import submitit

        self.spec = spec
        self.opts = opts
        self.ex = ex
        self.shards = opts.shards or DEFAULT_SHARDS
        cluster = None if opts.cluster == "auto" else opts.cluster
        folder.mkdir(parents=True, exist_ok=True)
        try:
            self.executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        except RuntimeError as exc:
            raise ExecutorError(f"submitit found no cluster to submit to ({exc})",
                                hint="run on a Slurm login node (sbatch on PATH), or pass --cluster local to run "
                                     "the jobs as local processes") from None
        self.tasks = max(1, opts.gpus_per_job or 1)
        params: dict[str, Any] = {
            "name": f"robbench-{ex.plan.suite.name}", "timeout_min": opts.timeout_min or DEFAULT_TIMEOUT_MIN,
            "gpus_per_node": opts.gpus_per_job, "cpus_per_task": opts.cpus_per_job, "mem_gb": opts.mem_gb,
            "tasks_per_node": self.tasks, "slurm_partition": opts.slurm_partition,
            "slurm_account": opts.slurm_account,
        }
        try:
            self.executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
        except (NameError, ValueError, AssertionError) as exc:
            raise ExecutorError(f"submitit rejected the job parameters: {exc}") from None
        self.job_ids: list[str] = []

    def run_round(self, keys: Sequence[UnitKey], progress: _Progress) -> list[UnitResult]:
        groups = _split(keys, self.shards)
        job = UnitJob()
        try:
            with self.executor.batch():
                jobs = [self.executor.submit(job, self.spec, g) for g in groups]
        except Exception as exc:  # noqa: BLE001 - sbatch failures surface here
            raise ExecutorError(f"submitting {len(groups)} jobs failed: {type(exc).__name__}: {exc}",
                                hint="check the Slurm options (--slurm-partition, --gpus-per-job, --timeout-min)") from None
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
                        progress.advance(sum(len(k[1]) for k in group))
                    except Exception as exc:  # noqa: BLE001 - a dead job: find what it finished
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
            raise ExecutorError(f"all {len(groups)} jobs failed and none finished a unit; first: {crashed[0]}",
                                hint=f"read the job logs in {self.executor.folder}; the environment of the jobs is "
                                     "probably broken")
        return [results[k] for k in keys]

    def _after_crash(self, group: list[UnitKey], msg: str) -> dict[UnitKey, UnitResult]:
        """Units of a crashed job: finished ones are fine; per task, the first unfinished one is charged."""
        done = _stored_samples(self.ex, {k[0] for k in group})
        ids = _sample_ids(self.ex.plan)
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
    #: compute-check records made by the workers beside the units, by defense (see robbench.checks)
    checks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "units_submitted": sum(self.rounds), "rounds": self.rounds,
                "retries": self.retries, "failed_units": self.failed_units, "job_ids": self.job_ids[:1000],
                "checks_in_workers": sorted(self.checks)}


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
    from robbench.seeding import derive_seed

    cell = next(c for c in ex.plan.cells if c.id == key[0])
    data = ex.data
    seed = ex.plan.suite.seed
    rows = []
    for i in key[1]:
        sid = data.ids[i]
        d = cell.describe()
        rows.append({
            "cell": cell.id, "sample_id": sid, "sample_index": ex.plan.sample_positions[i], "label": int(data.y[i]),
            "defense": d["defense"], "defense_name": d["defense_name"], "stochastic": cell.stochastic,
            "attack": d["attack"], "attack_name": d["attack_name"], "gradient": d["gradient"],
            "randomness": cell.randomness, "eot": cell.eot, "norm": d["norm"], "eps": d["eps"], "threat": d["threat"],
            "seed": derive_seed(seed, getattr(cell, "seed_key", cell.id), "attack", sid), "draws": cell.draws,
            "clean_correct": False, "clean_correct_draws": [], "adv_correct": False, "adv_correct_draws": [],
            "in_ball": None, "error": message,
        })
    return rows


def _write_failure(ex: Executor, key: UnitKey, message: str) -> None:
    from robbench.identity import stable_hash

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


def execute(ex: Executor, units: list[Unit], opts: ExecOptions, *, device: str = "auto",
            threads: int | None = None, quiet: bool = False, checks: bool = False) -> ExecReport:
    """Run ``units`` with the executor ``opts`` names; retries, failure rows, stage order.

    ``ex`` is the coordinator's in-process runner (it runs the units itself for the in-process
    executor, and supplies plan, data and results directory otherwise). ``checks``: a worker pool
    also computes the compute checks (:mod:`robbench.checks`) beside the units, answered in
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
                from robbench.checks import checked_defenses

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
