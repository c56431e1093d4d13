"""Benchmark 7: quickstart cold wall time (goal <= 5 minutes on 2 cores).

"Cold" = a fresh, empty zoo directory (every model the suite needs is trained first) and a fresh
results directory: ``robbench run suites/quickstart.yaml`` as a subprocess, timed end to end
(interpreter start, imports, training, every cell, the table). The time the run itself reports
(rows computed, excluding start-up and training) is printed beside it, and the zoo models trained.
The subprocess's CPU time (user + system) is printed too: on a shared machine wall time depends on
the other processes, while a run with ``-- --threads 1`` uses one core, so its CPU time is what its
wall time would be with a core to itself.

Run: ``python benchmarks/bench_quickstart_cold.py [--suite suites/quickstart.yaml] [-- extra run args]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import load_average

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 300.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default=str(ROOT / "suites" / "quickstart.yaml"))
    ap.add_argument("extra", nargs="*", help="extra arguments for robbench run (after --)")
    args = ap.parse_args()
    print(f"load average at start: {load_average()}; cores: {len(os.sched_getaffinity(0))}")
    with tempfile.TemporaryDirectory() as tmp:
        zoo, out = Path(tmp) / "zoo", Path(tmp) / "results"
        env = dict(os.environ, ROBBENCH_ZOO_DIR=str(zoo))
        cmd = [
            sys.executable,
            "-m",
            "robbench.cli",
            "run",
            args.suite,
            "--out",
            str(out),
            "--table",
            "md",
            "--quiet",
            *args.extra,
        ]
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        wall = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        print(f"command: ROBBENCH_ZOO_DIR=<empty> {' '.join(cmd[1:])}")
        print(
            f"exit code {res.returncode}; cold wall time {wall:.1f} s ({wall / 60:.2f} min); goal <= {GOAL_S:.0f} s: "
            f"{'met' if wall <= GOAL_S else 'NOT met'}"
        )
        print(f"  CPU time (user + system) of the run: {cpu:.1f} s ({cpu / 60:.2f} min)")
        m = re.search(r"(\d+) rows computed.*?([\d.]+)s ->", res.stderr)
        if m:
            print(f"  the run itself: {m.group(1)} rows in {m.group(2)} s (the rest: start-up and zoo training)")
        for f in sorted(zoo.glob("*.json")):
            man = json.loads(f.read_text())
            print(
                f"  trained {f.stem}: {man.get('train_seconds', '?')} s wall, {man.get('train_cpu_seconds', '?')} s CPU, "
                f"metrics {man.get('metrics')}"
            )
        manifest = out / "manifest.json"
        if manifest.is_file():
            cells = json.loads(manifest.read_text()).get("cells", [])
            print(f"  {len(cells)} cells")
        if res.returncode != 0:
            print(res.stderr[-3000:])
        else:
            print(res.stdout[-4000:])
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
