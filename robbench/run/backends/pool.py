"""The local worker pool (``--workers N``): processes forked by a fork server, fed one unit at a time.

Each worker has ``threads`` torch threads (default: the CPU cores divided by the workers) and is fed
one unit at a time (dynamic load balancing). A worker that dies (segfault, out of memory) is replaced
and only its current unit is charged a failed attempt. The workers start (and load the data) while
the coordinator loads the models, and they also compute the false-robustness checks of
:mod:`robbench.run.checks`, one task per defense queued ahead of the units, so neither adds to the
run's serial part. With several GPUs and ``--device auto`` or ``cuda``, worker ``i`` uses GPU
``i % count``. Workers write their shards atomically and never quarantine or delete anything.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from robbench.run.backends.base import CheckResult, CheckTask, Progress, UnitKey, UnitResult, WorkerSpec, setup_failure
from robbench.run.backends.worker import run_check_task, run_unit_safely, worker_runner
from robbench.run.options import ExecutorError
from robbench.run.unit import UnitRunner

#: modules the fork server imports once, so that each worker it forks starts with them loaded
FORKSERVER_PRELOAD = ["__main__", "robbench.run.backends.worker"]


def _slot_device(spec: WorkerSpec, slot: int) -> str | None:
    """Worker ``slot``'s device: with several GPUs and device auto/cuda, GPU ``slot % count``."""
    if spec.device not in ("auto", "cuda"):
        return None
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return f"cuda:{slot % n}" if n > 1 else None


def _worker_main(
    spec: WorkerSpec, conn: Any, slot: int = 0, env: dict[str, str] | None = None
) -> None:  # pragma: no cover - child process
    """A pool worker: build the plan and load the data at once (while the coordinator loads the
    models), then receive unit keys or :class:`CheckTask` s and answer their results; ``None`` ends it.

    ``env``: the coordinator's environment when it started this worker (a fork server's children
    would otherwise have the server's, from when it started: e.g. not a later run's
    ``--deterministic`` flag).
    """
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    runner: UnitRunner | None = None
    setup_error: BaseException | None = None
    try:
        runner = worker_runner(spec, device=_slot_device(spec, slot))
        _ = runner.data
    except Exception as exc:  # a worker that cannot build the plan cannot run any unit
        runner, setup_error = None, exc
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        if isinstance(msg, CheckTask):
            conn.send(run_check_task(runner, msg, setup_error))
        elif runner is None:
            assert setup_error is not None
            conn.send(setup_failure(msg, setup_error))
        else:
            conn.send(run_unit_safely(runner, msg, raise_fatal=False))


@dataclass(eq=False)
class _Worker:
    proc: Any
    conn: Any
    key: UnitKey | CheckTask | None = None
    slot: int = 0


def mp_context() -> Any:
    """The multiprocessing context of the pool: a fork server where the platform has one, else spawn.

    The fork server imports torch and the runner once; each worker is then a fork of it, without
    the ~2 s ``import torch`` a spawned worker pays (a 2-core machine pays it in wall time). The
    server never runs an op or touches CUDA, so forking it is safe. Workers take the coordinator's
    current environment (see :func:`_worker_main`), as spawned ones would.
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
    ctx = mp_context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


class PoolBackend:
    """``workers`` processes fed one unit (or check task) at a time; a dead worker is replaced."""

    name = "local-pool"

    def __init__(self, spec: WorkerSpec, workers: int) -> None:
        self.spec = spec
        self.n = workers
        self.ctx = mp_context()
        self.workers: list[_Worker] = []
        self.answered = 0  # results received from workers
        self.deaths = 0
        self.aborted = False
        #: check tasks queued ahead of the next round's units, and the records answered, by defense
        self.check_tasks: list[CheckTask] = []
        self.check_records: dict[str, list[dict[str, Any]]] = {}
        #: time.monotonic() after which no unit starts (``--max-minutes``); None: no limit
        self.deadline: float | None = None

    def _past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def start(self, jobs: int) -> None:
        """Start the workers for ``jobs`` queued items now (at most ``workers``): their start-up
        (plan, data) then overlaps the coordinator's."""
        while len(self.workers) < min(self.n, jobs):
            self.workers.append(self._start(len(self.workers)))

    def queue_checks(self, displays: Sequence[str]) -> None:
        """Run the compute checks of these defenses in the next round, ahead of its units (a long
        item queued last would leave the other workers idle at the end of the run)."""
        self.check_tasks.extend(CheckTask(d) for d in displays)

    def _start(self, slot: int) -> _Worker:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(
            target=_worker_main,
            args=(self.spec, child, slot, dict(os.environ)),
            daemon=True,
            name=f"robbench-worker-{slot}",
        )
        proc.start()
        child.close()
        return _Worker(proc, parent, slot=slot)

    def run_round(self, keys: Sequence[UnitKey], progress: Progress) -> list[UnitResult]:
        from multiprocessing.connection import wait

        queue: deque[UnitKey | CheckTask] = deque([*self.check_tasks, *keys])
        self.check_tasks = []
        self.start(len(queue))
        results: dict[UnitKey, UnitResult] = {}
        idle, busy = list(self.workers), list[Any]()
        while busy or (queue and not self._past_deadline()):
            while idle and queue and not self._past_deadline():
                w = idle.pop()
                w.key = queue.popleft()
                w.conn.send(w.key)
                busy.append(w)
            wait([w.conn for w in busy] + [w.proc.sentinel for w in busy])
            for w in list(busy):
                free = self._collect(w, results, progress)
                if self.aborted:
                    return [next(r for r in results.values() if r.fatal)]
                if free is not None:
                    busy.remove(w)
                    idle.append(free)
        return [results[k] for k in keys if k in results]  # past the deadline: the units that ran

    def _collect(self, w: _Worker, results: dict[UnitKey, UnitResult], progress: Progress) -> _Worker | None:
        """Take worker ``w``'s answer if it has one; returns the worker free for the next item (a fresh
        one when ``w`` died), or None when it is still busy."""
        res: UnitResult | CheckResult | None = None
        if w.conn.poll():
            try:
                res = w.conn.recv()
            except (EOFError, OSError):
                res = None
        if isinstance(res, CheckResult):
            self.check_records[res.display] = res.records
            return w
        if res is not None:
            self.answered += 1
            results[res.key] = res
            if res.fatal:  # no other unit can succeed: stop now (close() terminates the others)
                self.aborted = True
            progress.advance(len(res.key[1]), res.key[0], seconds=res.seconds or None)
            return w
        if w.proc.is_alive():
            return None
        return self._replace(w, results)

    def _replace(self, w: _Worker, results: dict[UnitKey, UnitResult]) -> _Worker:
        assert w.key is not None
        self.deaths += 1
        if self.answered == 0 and self.deaths >= 2 * self.n:
            raise ExecutorError(
                f"{self.deaths} worker processes died before answering once (exit code {w.proc.exitcode})",
                hint="run with --workers 1 to see the error; from a script, start the run under "
                "`if __name__ == '__main__':` (every worker process imports the main module)",
            )
        died = f"worker process died (exit code {w.proc.exitcode})"
        if isinstance(w.key, CheckTask):
            from robbench.run.checks.records import not_computed

            self.check_records[w.key.display] = [not_computed(w.key.display, f"failed: {died}")]
        else:
            results[w.key] = UnitResult(w.key, error=died)
        w.conn.close()
        fresh = self._start(w.slot)
        self.workers[self.workers.index(w)] = fresh
        return fresh

    def close(self) -> None:
        for w in self.workers:
            if self.aborted:
                w.proc.terminate()
                continue
            with contextlib.suppress(OSError, BrokenPipeError):
                w.conn.send(None)
        for w in self.workers:
            w.proc.join(timeout=30)
            if w.proc.is_alive():
                w.proc.terminate()
                w.proc.join(timeout=5)
            w.conn.close()
        self.workers = []
