"""Benchmark: how far a randomised purifier's robust accuracy moves when only the suite seed changes.

The suite (default ``benchmarks/suites/seed_variance.yaml``) is run once per seed, each time into its own
folder, with the same images, models and code: only the draws differ (the judge's, the attack's random
starts, and for ``randomness: det`` the attacker's known draws). Per cell and per defense (the per-sample
worst case over its attacks) it prints the accuracy under each seed (each cell scored worst of its judge
draws), the spread, the per-sample worst case over all seeds (robust only if robust under every seed), and
the exact McNemar p-value between the highest and the lowest seed (picked after the fact, so read it as a
screen, not a test).

Run: ``python benchmarks/bench_seed_variance.py [--seeds 0 1 2 3] [--workers 2 --threads 1] [--zoo-dir DIR]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml
from _common import load_average

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robbench import api
from robbench.report.compare import mcnemar_exact
from robbench.results.load import load_results
from robbench.results.scoring import scored


def run_seeds(suite: Path, seeds: list[int], out: Path, args: argparse.Namespace) -> dict[int, pd.DataFrame]:
    """Each seed's per-sample rows, scored worst of the judge draws."""
    spec = yaml.safe_load(suite.read_text())
    rows = {}
    for seed in seeds:
        folder = out / f"seed-{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "suite.yaml"
        path.write_text(yaml.safe_dump({**spec, "seed": seed, "name": f"{spec['name']}-seed{seed}"}, sort_keys=False))
        api.run(
            path,
            out=folder / "results",
            zoo_dir=args.zoo_dir,
            workers=args.workers,
            threads=args.threads,
            quiet=True,
            checks=False,
        )
        rows[seed] = scored(load_results(folder / "results").rows, "worst")
    return rows


def _wide(rows: dict[int, pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    """(keys..., sample_id) x seed: robust (1) or not (0)."""
    parts = [df.groupby([*keys, "sample_id"])["robust"].min().rename(seed) for seed, df in rows.items()]
    return pd.concat(parts, axis=1)


def report(rows: dict[int, pd.DataFrame]) -> None:
    seeds = list(rows)
    for title, keys, frames in (
        ("cell", ["defense", "attack"], rows),
        (
            "defense, worst case over its attacks",
            ["defense"],
            {s: df[df["attack"] != "clean"] for s, df in rows.items()},
        ),
    ):
        wide = _wide(frames, keys)
        print(
            f"\n| {title} | "
            + " | ".join(f"seed {s}" for s in seeds)
            + " | spread | worst over seeds | p (max vs min) |"
        )
        print("| --- |" + " ---: |" * (len(seeds) + 3))
        for key, g in wide.groupby(level=list(range(len(keys)))):
            acc = 100 * g.mean()
            hi, lo = acc.idxmax(), acc.idxmin()
            only_hi = int(((g[hi] == 1) & (g[lo] == 0)).sum())
            only_lo = int(((g[lo] == 1) & (g[hi] == 0)).sum())
            p = mcnemar_exact(only_hi, only_lo) if hi != lo else 1.0
            name = " / ".join(key) if isinstance(key, tuple) else str(key)
            cells = " | ".join(f"{acc[s]:.1f}" for s in seeds)
            worst = 100 * g.min(axis=1).mean()
            print(f"| {name} | {cells} | {acc.max() - acc.min():.1f} | {worst:.1f} | {p:.3g} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", type=Path, default=ROOT / "benchmarks" / "suites" / "seed_variance.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--zoo-dir", default=None)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    args = ap.parse_args()
    print(f"load average at start: {' '.join(load_average())}; suite {args.suite.name}; seeds {args.seeds}")
    with tempfile.TemporaryDirectory() as tmp:
        report(run_seeds(args.suite, args.seeds, args.out or Path(tmp), args))
    print(f"load average at end: {' '.join(load_average())}")


if __name__ == "__main__":
    main()
