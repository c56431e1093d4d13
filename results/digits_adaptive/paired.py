"""Paired per-sample tests behind REPORT.md: `python results/digits_adaptive/paired.py [RESULTS_DIR]`.

Per defense and threat of the stored run (every cell of a stochastic defense scored worst of its 4 judge
draws): the clean accuracy, each protocol of the full ``adaptive`` cascade, the full cascade's per-sample
worst case, and the quick cascade's (``level: quick``: the subset of the same protocols that
robbench.run.adaptive keeps at that level, scored from the same rows), then the images robust under the
quick cascade but not under the full one, and the exact McNemar p-value of quick vs full. Both sides
are scored the same way on the same images.
"""

from __future__ import annotations

import sys

from robbench.attacks.adaptive import AdaptiveParams
from robbench.core import registry
from robbench.report.compare import mcnemar_exact
from robbench.results.load import load_results
from robbench.results.scoring import scored
from robbench.run.adaptive import protocols

ENTRY = "full"  # the adaptive entry's id in suites/digits_adaptive.yaml


def quick_protocols(defense: str, steps: int) -> set[str]:
    cls = registry.defenses.get(defense)
    return {f"{ENTRY}.{name}" for name, _, _ in protocols(cls, AdaptiveParams(steps=steps, level="quick"))}


def main(path: str) -> None:
    loaded = load_results(path)
    df = scored(loaded.rows, "worst")
    suite = loaded.manifest.suite
    names = {d.display: d.name for d in suite.defenses}
    clean = df[df["attack"] == "clean"].groupby("defense")["robust"].mean()
    print(
        "| defense | threat | clean % | full cascade % | quick cascade % | only quick robust | McNemar p |"
        " strongest single protocol |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    attacked = df[df["attack"].str.startswith(f"{ENTRY}.")]
    for (defense, norm, eps), g in attacked.groupby(["defense", "norm", "eps"], sort=False):
        wide = g.pivot_table(index="sample_id", columns="attack", values="robust", aggfunc="min")
        full = wide.min(axis=1)
        cols = [c for c in wide.columns if c in quick_protocols(names[str(defense)], 10)]
        quick = wide[cols].min(axis=1)
        only_q, only_f = int(((quick == 1) & (full == 0)).sum()), int(((quick == 0) & (full == 1)).sum())
        per = wide.mean().sort_values()
        best = f"{per.index[0].removeprefix(ENTRY + '.')} {100 * per.iloc[0]:.1f}"
        print(
            f"| {defense} | {norm} {eps:g} | {100 * clean[defense]:.1f} | {100 * full.mean():.1f} "
            f"| {100 * quick.mean():.1f} ({len(cols)} of {wide.shape[1]}) | {only_q} | "
            f"{mcnemar_exact(only_q, only_f):.3g} | {best} |"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/digits_adaptive")
