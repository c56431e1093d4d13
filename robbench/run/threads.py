"""How many torch CPU threads a run uses when ``--threads`` is not given.

torch's default is one thread per core. On a shared machine whose cores are already busy, that
oversubscribes them and OpenMP's spinning threads can make a run 10-20x slower (issue 17: the
quickstart took 29 min instead of 2.5 under a load of 2-3 on 2 cores). robbench therefore counts the
cores that are actually free (usable cores minus the busy ones, rounded), divides them among the worker
processes, and uses at least one thread per worker. The busy cores are sampled from ``/proc/stat`` over
0.2 s (the 1-minute load average lags: just after other work ends it still reads 1.5, and robbench chose
one thread on an idle machine; just after a job starts it reads 0); where ``/proc/stat`` is missing, the
load average is used. ``--threads N`` overrides the choice; the
choice and its inputs are printed and recorded in the manifest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _cpu_times() -> tuple[float, float] | None:
    """(total, idle) jiffies of all CPUs from /proc/stat, or None."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 6:
        return None
    vals = [float(v) for v in fields[1:9]]
    return sum(vals), vals[3] + vals[4]  # idle + iowait


def busy_cores(window: float = 0.2) -> float | None:
    """Cores busy right now: the non-idle share of all CPUs' time over ``window`` seconds, times the CPU
    count; None where /proc/stat is missing."""
    import time

    a = _cpu_times()
    if a is None:
        return None
    time.sleep(window)
    b = _cpu_times()
    if b is None or b[0] <= a[0]:
        return None
    busy = 1.0 - (b[1] - a[1]) / (b[0] - a[0])
    return max(0.0, busy) * (os.cpu_count() or 1)


def load_average() -> float | None:
    """The 1-minute load average, or None where the OS has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - not Unix
        return None


@dataclass(frozen=True)
class ThreadChoice:
    """Threads per worker process, and why."""

    threads: int
    cores: int
    load: float | None
    workers: int
    explicit: bool

    def describe(self) -> str:
        """One line for the user and the manifest."""
        per = " per worker" if self.workers > 1 else ""
        if self.explicit:
            return f"torch threads: {self.threads}{per} (--threads)"
        load = "unknown" if self.load is None else f"{self.load:.2f}"
        return (
            f"torch threads: {self.threads}{per}, chosen from {self.cores} usable cores, {load} busy"
            + (f", {self.workers} workers" if self.workers > 1 else "")
            + " (--threads N overrides)"
        )


def choose_threads(
    requested: int | None, workers: int = 1, *, cores: int | None = None, load: float | None = -1.0
) -> ThreadChoice:
    """``requested`` if given; else the free cores (cores - round(load)) shared among ``workers``, >= 1.

    ``cores`` and ``load`` (busy cores) default to this machine's (``load=-1`` means "measure it": sampled
    busy cores, else the load average); tests pass them.
    """
    workers = max(1, workers)
    n_cores = usable_cores() if cores is None else cores
    if requested:
        return ThreadChoice(requested, n_cores, None, workers, explicit=True)
    avg = load if load != -1.0 else busy_cores()
    if load == -1.0 and avg is None:
        avg = load_average()
    busy = 0 if avg is None else round(avg)
    free = max(1, n_cores - busy)
    return ThreadChoice(max(1, free // workers), n_cores, avg, workers, explicit=False)
