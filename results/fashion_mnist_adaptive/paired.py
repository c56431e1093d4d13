"""Paired per-sample tests behind REPORT.md: `python results/fashion_mnist_adaptive/paired.py [RESULTS_DIR [OLD_DIR]]`.

Per defense whose ``adaptive`` cells are all complete (256 rows each) in this run: the clean accuracy, the adaptive
cascade's per-sample worst case and its strongest single protocol, beside the per-sample worst case over the
protocols the recorded results/fashion_mnist ran on the same defense, images and threat (Linf 0.1); then the images
robust under the old protocols but broken by adaptive, the other way round, and the exact McNemar p-value. Every
cell of a stochastic defense is scored worst of its 4 judge draws, on both sides; deterministic defenses have one
draw. Defenses with missing adaptive rows are listed as not yet complete.
"""

from __future__ import annotations

import sys

import pandas as pd

from robbench.report.compare import mcnemar_exact
from robbench.results.load import load_results
from robbench.results.scoring import scored

N = 256
ENTRY = "adaptive"


def _linf(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["norm"] == "linf") & ((df["eps"] - 0.1).abs() < 1e-9)]


def main(path: str, old_path: str) -> None:
    new = scored(load_results(path).rows, "worst")
    old = scored(load_results(old_path).rows, "worst")
    manifest_cells = load_results(path).manifest.cells
    expanded = list(dict.fromkeys((c.defense, c.attack) for c in manifest_cells if c.attack.startswith(ENTRY + ".")))
    print(
        "| defense | clean % | adaptive % | strongest adaptive protocol | old protocols % (which) "
        "| broken only by adaptive | broken only by old | McNemar p |"
    )
    print("|---|---:|---:|---|---|---:|---:|---:|")
    waiting = []
    for defense in dict.fromkeys(d for d, _ in expanded):
        cells = sorted(a for d, a in expanded if d == defense)
        g = _linf(new[new["defense"] == defense])
        counts = g.groupby("attack")["sample_id"].nunique()
        if any(counts.get(a, 0) < N for a in cells):
            waiting.append(f"{defense} ({sum(counts.get(a, 0) >= N for a in cells)} of {len(cells)} protocols)")
            continue
        wide = g.pivot_table(index="sample_id", columns="attack", values="robust", aggfunc="min")
        ada = wide[cells].min(axis=1)
        per = wide[cells].mean().sort_values()
        clean = new[(new["defense"] == defense) & (new["attack"] == "clean")]["robust"].mean()
        o = _linf(old[old["defense"] == defense])
        if o.empty:
            print(
                f"| {defense} | {100 * clean:.1f} | {100 * ada.mean():.1f} | {per.index[0].removeprefix(ENTRY + '.')} "
                f"{100 * per.iloc[0]:.1f} | (no Linf 0.1 cells in the old run) | | | |"
            )
            continue
        ow = o.pivot_table(index="sample_id", columns="attack", values="robust", aggfunc="min")
        prior = ow.min(axis=1).reindex(ada.index)
        only_ada = int(((ada == 0) & (prior == 1)).sum())
        only_old = int(((ada == 1) & (prior == 0)).sum())
        print(
            f"| {defense} | {100 * clean:.1f} | {100 * ada.mean():.1f} | {per.index[0].removeprefix(ENTRY + '.')} "
            f"{100 * per.iloc[0]:.1f} | {100 * prior.mean():.1f} ({', '.join(ow.columns)}) | {only_ada} | "
            f"{only_old} | {mcnemar_exact(only_ada, only_old):.3g} |"
        )
    if waiting:
        print("\nNot yet complete: " + "; ".join(waiting))


if __name__ == "__main__":
    args = sys.argv[1:] + ["results/fashion_mnist_adaptive", "results/fashion_mnist"][len(sys.argv[1:]) :]
    main(args[0], args[1])
