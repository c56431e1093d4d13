"""Benchmark: thread choice under load (issue 17 item 8), side by side in one run.

Starts ``--busy`` CPU-bound processes (default: one per usable core, a stand-in for other users'
jobs), waits until the 1-minute load average has risen past ``--busy - 0.5`` (or ``--settle`` seconds),
then runs the same small digits suite (undefended CNN, PGD-20, n samples) twice, alternately, ``--reps``
times each, in a fresh results folder each time:

- ``old``: ``--threads C`` with C = usable cores (torch's default, what robbench did before);
- ``new``: no ``--threads`` (robbench chooses from the free cores and prints the choice).

Prints the wall time of each run, the threads the new path chose, and the load average.

Run: ``python benchmarks/bench_threads_under_load.py [--reps 2] [--n 128] [--busy 2]``
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import load_average

ROOT = Path(__file__).resolve().parents[1]


def _spin() -> None:  # pragma: no cover - runs in a child process until killed
    x = 0
    while True:
        x += 1


def _suite(path: Path, n: int) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "name": "threads_bench",
                "seed": 0,
                "data": {"dataset": "digits", "split": "test", "n_samples": n},
                "classifier": "digits-cnn",
                "threats": [{"norm": "linf", "eps": 0.1}],
                "defenses": [{"name": "none"}],
                "attacks": [{"id": "PGD20", "name": "pgd", "params": {"steps": 20}}],
                "evaluation": {"batch_size": 32},
            }
        )
    )


def _run(suite: Path, out: Path, threads: int | None) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "robbench.cli", "run", str(suite), "--out", str(out), "--table", "none", "--no-checks"]
    cmd += ["--threads", str(threads)] if threads else []
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    said = next((ln for ln in res.stderr.splitlines() if ln.startswith("torch threads:")), "?")
    return time.perf_counter() - start, said


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--busy", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--settle", type=float, default=90.0)
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"load before: {' '.join(load_average())}; {cores} usable cores; {args.busy} busy processes")
    busy = [mp.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for p in busy:
        p.start()
    try:
        t0 = time.time()
        while os.getloadavg()[0] < args.busy - 0.5 and time.time() - t0 < args.settle:
            time.sleep(2)
        print(f"load after {time.time() - t0:.0f} s of busy processes: {' '.join(load_average())}")
        with tempfile.TemporaryDirectory() as tmp:
            suite = Path(tmp) / "s.yaml"
            _suite(suite, args.n)
            _run(suite, Path(tmp) / "warm", 1)  # imports and the zoo model warm, not timed
            times: dict[str, list[float]] = {"old": [], "new": []}
            for r in range(args.reps):
                for name, threads in (("old", cores), ("new", None)):
                    s, said = _run(suite, Path(tmp) / f"{name}{r}", threads)
                    times[name].append(s)
                    print(f"  {name} rep {r}: {s:7.1f} s  [{said}]  load {' '.join(load_average())}")
    finally:
        for p in busy:
            p.kill()
    old, new = min(times["old"]), min(times["new"])
    print(f"best of {args.reps}: old (--threads {cores}) {old:.1f} s, new (chosen) {new:.1f} s, ratio {old / new:.2f}x")


if __name__ == "__main__":
    main()
