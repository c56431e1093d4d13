"""Benchmark 6: a sharded run on 2 workers vs 1 (goal >= 1.7x on a 2-core machine).

Runs one digits suite (undefended CNN, PGD at three budgets: CPU-bound, many small units) end to
end with the CLI, as a user would, into fresh results directories, alternating the variants in
each repetition so machine load hits all alike:

- ``1 worker``:  ``--workers 1 --threads 1`` (in process, one core);
- ``2 workers``: ``--workers 2 --threads 1`` (process pool, one thread per worker);
- ``1 process, 2 threads``: ``--threads 2`` (what intra-op parallelism alone gives);
- ``submitit local, 2 jobs``: ``--executor submitit --cluster local --shards 2`` (with ``--all``).

The speed-up reported is the median over repetitions of (1-worker time / variant time). Process
start-up (spawn, imports, plan, model load) is inside the measured time: that is what a user pays.

Run: ``python benchmarks/bench_sharding.py [--reps 3] [--n 364] [--steps 20] [--all]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import load_average

ROOT = Path(__file__).resolve().parents[1]


def suite(n: int, steps: int) -> dict:  # type: ignore[type-arg]
    return {
        "name": "bench-sharding",
        "seed": 0,
        "data": {"dataset": "digits", "split": "test", "n_samples": n},
        "classifier": "digits-cnn",
        "threats": [{"norm": "linf", "eps": 0.05}, {"norm": "linf", "eps": 0.1}, {"norm": "l2", "eps": 1.0}],
        "defenses": [{"name": "none"}],
        "attacks": [{"id": "clean", "name": "clean"}, {"id": f"PGD{steps}", "name": "pgd", "params": {"steps": steps}}],
        "evaluation": {"batch_size": 32},
    }


def run_cli(path: Path, out: Path, extra: list[str]) -> float:
    env = dict(os.environ)
    env.setdefault("ROBBENCH_ZOO_DIR", str(ROOT / ".robbench-cache" / "zoo"))
    t0 = time.perf_counter()
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "robbench.cli",
            "run",
            str(path),
            "--out",
            str(out),
            "--quiet",
            "--table",
            "none",
            "--shard-size",
            "32",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"robbench run {' '.join(extra)} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n", type=int, default=364)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--all", action="store_true", help="also submitit local jobs")
    args = ap.parse_args()
    variants = {
        "1 worker (1 thread)": ["--workers", "1", "--threads", "1"],
        "2 workers (1 thread each)": ["--workers", "2", "--threads", "1"],
        "1 process, 2 threads": ["--threads", "2"],
    }
    if args.all:
        variants["submitit local, 2 jobs (1 thread)"] = [
            "--executor",
            "submitit",
            "--cluster",
            "local",
            "--shards",
            "2",
            "--cpus-per-job",
            "1",
        ]
    print(f"load average at start: {load_average()}; cores: {len(os.sched_getaffinity(0))}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "suite.yaml"
        path.write_text(yaml.safe_dump(suite(args.n, args.steps), sort_keys=False))
        # warm the zoo (the classifier) so no variant pays for training it
        run_cli(path, Path(tmp) / "warm", ["--threads", "2"])
        times: dict[str, list[float]] = {k: [] for k in variants}
        for rep in range(args.reps):
            for name, extra in variants.items():
                times[name].append(run_cli(path, Path(tmp) / f"{rep}-{len(times[name])}-{abs(hash(name))}", extra))
            print(f"  rep {rep + 1}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()), flush=True)
    base = times["1 worker (1 thread)"]
    print(f"\nsuite: digits n={args.n}, PGD-{args.steps} x 3 threats + clean, batch 32, shard 32")
    for name, ts in times.items():
        speedups = [b / t for b, t in zip(base, ts)]
        print(
            f"  {name:<36} median {statistics.median(ts):7.1f} s   speed-up vs 1 worker "
            f"{statistics.median(speedups):.2f}x  (per rep {', '.join(f'{s:.2f}' for s in speedups)})"
        )
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
