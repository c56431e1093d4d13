"""Paired per-sample tests behind REPORT.md: `python results/fashion_mnist/paired.py [RESULTS_DIR]`.

Each line pairs two cells of the stored run on the same test images (256): accuracy of each (every cell
of a stochastic defense scored worst of its 4 judge draws, det cells included: their draw 0 is the
attacker's seeds, the other three fresh), the images robust in only one of them, and the exact McNemar
p-value (robbench.report.compare.mcnemar_exact). Both sides of every pair are scored the same way. Claim
"a*" pairs the defenses' worst cases at Linf 0.1 (per sample: robust under every Linf attack it met).
"""

from __future__ import annotations

import sys

from robbench.report.compare import mcnemar_exact
from robbench.results.load import load_results
from robbench.results.scoring import scored

WORST = "worst-case"  # per sample, robust only if robust under every Linf attack of the defense

PAIRS = [  # (claim, (defense, attack), (defense, attack))
    ("a*", ("pursamere-eps1x", WORST), ("scoreopt", WORST)),
    ("a*", ("pursamere-eps1x", WORST), ("adp", WORST)),
    ("a*", ("pursamere-eps1x", WORST), ("diffpure", WORST)),
    ("a*", ("pursamere-eps1x", WORST), ("gdmp", WORST)),
    ("a*", ("pursamere-eps1x", WORST), ("agdm", WORST)),
    ("a*", ("pursamere-lr-eps1.5x", WORST), ("scoreopt", WORST)),
    ("a*", ("pursamere-lr-eps1.5x", WORST), ("adp", WORST)),
    ("a*", ("pursamere-lr-eps1.5x", WORST), ("diffpure", WORST)),
    ("a*", ("pursamere-lr-eps1.5x", WORST), ("gdmp", WORST)),
    ("a*", ("pursamere-lr-eps1.5x", WORST), ("agdm", WORST)),
    ("a", ("pursamere-eps1x", "BPDA20-det"), ("scoreopt", "BPDA20-det")),
    ("a", ("pursamere-eps1x", "BPDA20-det"), ("adp", "BPDA20-det")),
    ("a", ("pursamere-eps1x", "BPDA20-det"), ("diffpure", "BPDA20-det")),
    ("a", ("pursamere-eps1x", "BPDA20-det"), ("gdmp", "BPDA20-det")),
    ("a", ("pursamere-eps1x", "BPDA20-det"), ("agdm", "BPDA20-det")),
    ("a", ("pursamere-lr-eps1.5x", "BPDA20-det"), ("scoreopt", "BPDA20-det")),
    ("a", ("pursamere-lr-eps1.5x", "BPDA20-det"), ("adp", "BPDA20-det")),
    ("a", ("pursamere-lr-eps1.5x", "BPDA20-det"), ("diffpure", "BPDA20-det")),
    ("a", ("pursamere-lr-eps1.5x", "BPDA20-det"), ("gdmp", "BPDA20-det")),
    ("b", ("scoreopt", "BPDA20-fresh"), ("scoreopt", "BPDA20-det")),
    ("b", ("adp", "BPDA20-fresh"), ("adp", "BPDA20-det")),
    ("b", ("diffpure", "BPDA20-fresh"), ("diffpure", "BPDA20-det")),
    ("b", ("gdmp", "BPDA20-fresh"), ("gdmp", "BPDA20-det")),
    ("b", ("diffpure", "BPDA20-fresh"), ("diffpure", "PGD20-det")),
    ("b", ("diffpure", "BPDA20-det"), ("diffpure", "PGD20-det")),
    ("c", ("pursamere-eps1x", "clean"), ("pursamere-eps2x", "clean")),
    ("c", ("pursamere-eps1x", "BPDA20-det"), ("pursamere-eps2x", "BPDA20-det")),
    ("c", ("pursamere-lr-eps1x", "clean"), ("pursamere-lr-eps2x", "clean")),
    ("c", ("pursamere-lr-eps1x", "BPDA20-det"), ("pursamere-lr-eps1.5x", "BPDA20-det")),
    ("c", ("pursamere-lr-eps1x", "BPDA20-det"), ("pursamere-lr-eps2x", "BPDA20-det")),
    ("d", ("pursamere-eps1x", "gPGD20"), ("pursamere-eps1x", "BPDA20-det")),
    ("d", ("scoreopt", "gPGD20"), ("scoreopt", "BPDA20-det")),
    ("d", ("adp", "gPGD20"), ("adp", "BPDA20-det")),
    ("d", ("diffpure", "gPGD20"), ("diffpure", "BPDA20-det")),
    ("d", ("gdmp", "gPGD20"), ("gdmp", "BPDA20-det")),
    ("d", ("agdm", "gPGD20"), ("agdm", "BPDA20-det")),
]


def main(path: str) -> None:
    df = scored(load_results(path).rows, "worst")
    flags = {key: g.set_index("sample_id")["robust"] for key, g in df.groupby(["defense", "attack"])}
    linf = df[df["norm"] == "linf"]
    for defense, g in linf.groupby("defense"):
        flags[(str(defense), WORST)] = g.groupby("sample_id")["robust"].min()
    print("| claim | A | B | A % | B % | only A | only B | McNemar p |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for claim, a, b in PAIRS:
        fa, fb = flags[a], flags[b].reindex(flags[a].index)
        only_a, only_b = int(((fa == 1) & (fb == 0)).sum()), int(((fa == 0) & (fb == 1)).sum())
        print(
            f"| {claim} | {' / '.join(a)} | {' / '.join(b)} | {100 * fa.mean():.1f} | {100 * fb.mean():.1f} "
            f"| {only_a} | {only_b} | {mcnemar_exact(only_a, only_b):.3g} |"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/fashion_mnist")
