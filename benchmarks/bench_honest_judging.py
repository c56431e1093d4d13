"""Benchmark: the honest-judging fixes of issue 25, before and after, on the same models and samples.

Runs ``benchmarks/suites/honest_judging.yaml`` twice with ``robbench run``: once with the code of a
git revision before the fixes (default b54b529, checked out into a temporary worktree) and once with
this checkout, on the same zoo models, then prints one markdown table: per cell the accuracy, the
scoring, the judge draws and how many returned images are unperturbed (the clean image).

With ``--torchattacks`` it runs ``benchmarks/suites/honest_judging_torchattacks.yaml`` instead (needs the
real torchattacks: ``pip install --no-deps torchattacks==3.5.1``): before, as written; after, ``robbench
validate`` must refuse it (its message is printed), and it is run again with ``overrides:
[library-early-stop]``, the one way to get the library's stopping rule back (flagged).

Run: ``python benchmarks/bench_honest_judging.py [--before b54b529] [--zoo-dir .robbench-cache/zoo] [--torchattacks]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from _common import load_average

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "benchmarks" / "suites"


def run_with(code: Path, suite: Path, out: Path, zoo_dir: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(code), ROBBENCH_ZOO_DIR=zoo_dir)
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "robbench.cli", "run", str(suite), "--out", str(out), "--zoo-dir", zoo_dir]
    cmd += ["--quiet", "--table", "none", "--threads", "1", "--no-checks"]
    subprocess.run(cmd, check=True, env=env, cwd=code)
    return time.perf_counter() - t0


def cells(out: Path) -> pd.DataFrame:
    """Per defense x attack: n, accuracy worst of the stored draws, draws, unperturbed images."""
    import pyarrow.parquet as pq

    frames = [pq.read_table(p).to_pandas() for p in sorted((out / "rows").glob("*/*.parquet"))]
    rows = pd.concat(frames, ignore_index=True)
    rows["robust"] = [bool(all(d)) for d in rows["adv_correct_draws"]]
    rows["unperturbed"] = (rows["pert_linf"] == 0) & (rows["attack"] != "clean")
    g = rows.groupby(["defense", "attack"], sort=False)
    return pd.DataFrame(
        {
            "n": g.size(),
            "acc": 100 * g["robust"].mean(),
            "draws": g["draws"].max(),
            "unperturbed": g["unperturbed"].sum(),
        }
    )


def with_override(suite: Path, tmp: Path) -> Path:
    """``suite`` with ``evaluation.overrides: [library-early-stop]``, after showing that validation refuses it."""
    import yaml

    cmd = [sys.executable, "-m", "robbench.cli", "validate", str(suite)]
    refused = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    print(f"after, as written: `robbench validate` exit {refused.returncode}: {refused.stderr.strip()}\n")
    spec = yaml.safe_load(suite.read_text())
    spec["evaluation"]["overrides"] = ["library-early-stop"]
    out = tmp / suite.name
    out.write_text(yaml.safe_dump(spec))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default="b54b529")
    ap.add_argument("--zoo-dir", default=str(ROOT / ".robbench-cache" / "zoo"))
    ap.add_argument("--torchattacks", action="store_true", help="the torchattacks demonstration (item 2)")
    args = ap.parse_args()
    suite = SUITES / ("honest_judging_torchattacks.yaml" if args.torchattacks else "honest_judging.yaml")
    load0 = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.before], cwd=ROOT, check=True)
        try:
            t_old = run_with(old, suite, Path(tmp) / "before", args.zoo_dir)
            new_suite = with_override(suite, Path(tmp)) if args.torchattacks else suite
            t_new = run_with(ROOT, new_suite, Path(tmp) / "after", args.zoo_dir)
            before, after = cells(Path(tmp) / "before"), cells(Path(tmp) / "after")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False)
    table = before.add_suffix(" before").join(after.add_suffix(" after"), how="outer")
    print(f"# honest judging, before ({args.before}) and after; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"load {' '.join(load0)} -> {' '.join(load_average())}; wall {t_old:.0f} s before, {t_new:.0f} s after\n")
    cols = ["defense", "attack", *table.columns]
    print("| " + " | ".join(cols) + " |")
    print("|" + " --- |" * len(cols))
    for (defense, attack), r in table.iterrows():
        vals = ["" if pd.isna(v) else f"{v:.1f}" if c.startswith("acc") else str(int(v)) for c, v in r.items()]
        print(f"| {defense} | {attack} | " + " | ".join(vals) + " |")


if __name__ == "__main__":
    main()
