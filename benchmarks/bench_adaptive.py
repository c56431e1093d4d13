"""Benchmark (issue 14): ``adaptive`` beside every protocol robbench offered before, on the same samples.

Runs ``benchmarks/suites/adaptive_vs_protocols.yaml`` (suites/ci.yaml's defenses and protocols plus an
``adaptive`` entry, steps 10, EoT 4, Linf 0.1, 64 digits, every cell judged worst of 4 draws) and prints
per defense: the clean line, every single protocol's robust accuracy, the per-sample worst case over the
old protocols, the per-sample worst case over adaptive's protocols, and the points some old protocol
breaks that adaptive does not.

Run: ``python benchmarks/bench_adaptive.py [--out DIR] [--workers 2]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from _common import load_average

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "suites" / "adaptive_vs_protocols.yaml"


def robust_by_sample(out: Path) -> pd.DataFrame:
    """Linf rows: defense, attack, sample_id, robust (worst of the stored draws)."""
    sys.path.insert(0, str(ROOT))
    from robbench.results.load import load_results

    rows = load_results(out).rows
    rows = rows[rows["norm"].isin(["linf", "none"])].copy()
    rows["robust"] = [bool(all(d)) for d in rows["adv_correct_draws"]]
    return rows[["defense", "attack", "sample_id", "robust"]]


def compare(rows: pd.DataFrame) -> list[dict[str, object]]:
    out = []
    for defense, g in rows.groupby("defense", sort=False):
        wide = g.pivot_table(index="sample_id", columns="attack", values="robust", aggfunc="min")
        adaptive = [c for c in wide.columns if str(c).startswith("adaptive.")]
        old = [c for c in wide.columns if c not in adaptive and c != "clean"]
        if not adaptive or not old:
            continue
        ada = wide[adaptive].min(axis=1)
        worst_old = wide[old].min(axis=1)
        line: dict[str, object] = {
            "defense": defense,
            "clean": 100 * wide["clean"].mean(),
            "best single old protocol": f"{100 * wide[old].mean().min():.1f} ({wide[old].mean().idxmin()})",
            "worst case over old": 100 * worst_old.mean(),
            "adaptive": 100 * ada.mean(),
            "adaptive <= every old protocol": bool((ada.mean() <= wide[old].mean()).all()),
            "points an old protocol breaks, adaptive not": int((ada & ~worst_old).sum()),
        }
        if "gPGD10" in wide:
            line["gray-box gPGD10"] = 100 * wide["gPGD10"].mean()
        out.append(line)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/robbench-bench-adaptive")
    ap.add_argument("--workers", default="2")
    ap.add_argument("--zoo-dir", default=str(ROOT / ".robbench-cache" / "zoo"))
    args = ap.parse_args()
    load0 = load_average()
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "robbench.cli", "run", str(SUITE), "--out", args.out, "--zoo-dir", args.zoo_dir]
    cmd += ["--workers", args.workers, "--threads", "1", "--quiet", "--table", "none", "--no-checks"]
    subprocess.run(cmd, check=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    print(f"# adaptive vs the old protocols; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"load {' '.join(load0)} -> {' '.join(load_average())}; wall {wall:.0f} s (rows reused if stored)\n")
    lines = compare(robust_by_sample(Path(args.out)))
    cols = list(dict.fromkeys(k for line in lines for k in line))
    print("| " + " | ".join(cols) + " |")
    print("|" + " --- |" * len(cols))
    for line in lines:
        vals = [line.get(c, "") for c in cols]
        print("| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in vals) + " |")


if __name__ == "__main__":
    main()
