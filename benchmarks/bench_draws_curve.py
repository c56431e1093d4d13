"""Benchmark: a randomised purifier's worst-of-j accuracy for j = 1..m judge draws, from one run's stored draws.

Runs the suite (default ``benchmarks/suites/judge_draws_16.yaml``: 16 draws) and prints, per cell of a stochastic
defense, the unbiased worst-of-j estimate (``robbench.run.checks.draw_trend.worst_of_curve``) at the draw counts
asked for, and how much the last doubling of j removed.

Run: ``python benchmarks/bench_draws_curve.py [--suite FILE] [--zoo-dir DIR] [--threads N] [--out DIR]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import load_average

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robbench import api
from robbench.results.load import load_results
from robbench.run.checks.draw_trend import worst_of_curve

SHOWN = (1, 2, 4, 8, 16)


def curves(results: Path) -> None:
    rows = load_results(results).rows
    rows = rows[rows["stochastic"].astype(bool) & rows["error"].isna()]
    shown = [j for j in SHOWN if j <= int(rows["draws"].min())]
    print("| defense | attack | " + " | ".join(f"worst of {j}" for j in shown) + " | last doubling removed |")
    print("| --- | --- |" + " ---: |" * (len(shown) + 1))
    for (defense, attack), g in rows.groupby(["defense", "attack"], sort=False):
        curve = worst_of_curve([list(d) for d in g["adv_correct_draws"]])
        vals = [curve[j - 1] for j in shown]
        print(f"| {defense} | {attack} | " + " | ".join(f"{v:.1f}" for v in vals) + f" | {vals[-2] - vals[-1]:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", type=Path, default=ROOT / "benchmarks" / "suites" / "judge_draws_16.yaml")
    ap.add_argument("--zoo-dir", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="keep the run here (default: a temporary folder)")
    args = ap.parse_args()
    print(f"load average at start: {' '.join(load_average())}; suite {args.suite.name}")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "results"
        api.run(args.suite, out=out, zoo_dir=args.zoo_dir, threads=args.threads, quiet=True, checks=False)
        curves(out)
    print(f"load average at end: {' '.join(load_average())}")


if __name__ == "__main__":
    main()
