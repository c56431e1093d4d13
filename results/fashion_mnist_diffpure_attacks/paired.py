"""Paired per-sample tests behind REPORT.md: `python results/fashion_mnist_diffpure_attacks/paired.py [DIR]`.

DiffPure on Fashion-MNIST (256 test images, Linf 0.1), every cell judged worst of 4 draws. Per attack: accuracy,
model evaluations and seconds per image (the attack's and the judge's, as stored in the rows); then each pair of
attacks with the images robust under only one of them and the exact McNemar p-value. Both sides of every pair are
scored the same way on the same images.
"""

from __future__ import annotations

import itertools
import sys

from robbench.report.compare import mcnemar_exact
from robbench.results.load import load_results
from robbench.results.scoring import scored

ATTACKS = ["PGD20-EoT4", "DiffHammer20-4", "DiffAttack20-EoT4", "PGD20-det"]


def main(path: str) -> None:
    df = scored(load_results(path).rows, "worst")
    robust = {a: g.set_index("sample_id")["robust"] for a, g in df.groupby("attack")}
    print("| attack | accuracy % | model evals / image | seconds / image |")
    print("|---|---:|---:|---:|")
    for a in ["clean", *ATTACKS]:
        g = df[df["attack"] == a]
        print(f"| {a} | {100 * g['robust'].mean():.1f} | {g['model_evals'].mean():.0f} | {g['seconds'].mean():.2f} |")
    worst = df[df["attack"].isin(ATTACKS)].groupby("sample_id")["robust"].min()
    print(f"| worst case over the four | {100 * worst.mean():.1f} | | |")
    print()
    print("| A | B | A % | B % | only A robust | only B robust | McNemar p |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for a, b in itertools.combinations(ATTACKS, 2):
        fa, fb = robust[a], robust[b].reindex(robust[a].index)
        only_a, only_b = int(((fa == 1) & (fb == 0)).sum()), int(((fa == 0) & (fb == 1)).sum())
        print(
            f"| {a} | {b} | {100 * fa.mean():.1f} | {100 * fb.mean():.1f} | {only_a} | {only_b} "
            f"| {mcnemar_exact(only_a, only_b):.3g} |"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/fashion_mnist_diffpure_attacks")
