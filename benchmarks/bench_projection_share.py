"""Benchmark: the share of PGD-20's CPU time spent in the exact projection onto ball ∩ [0, 1]^d, per norm.

robbench projects exactly (Linf: a clip; L2 and L1: a float64 bisection on the Lagrange multiplier,
robbench/core/threat.py); ART and foolbox rescale (L2) or project (L1) and then clip, which is feasible but not
the Euclidean projection onto the intersection. This measures what exactness costs on the undefended digits CNN
(128 test images, one thread, best of 5 repetitions by process CPU time), the structural part of the
L2 / L1 gap in the peers benchmark. Each norm runs the current projection and the one the recorded
results were computed with (``tests/test_projection_identity.py``'s reference: same values bit for bit,
torch bookkeeping) alternately, so their costs are compared side by side in one run.

Run: ``python benchmarks/bench_projection_share.py``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from _common import load_average

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import robbench.core.threat as threat_module
from robbench.attacks.pgd import PGD, PGDParams
from robbench.attacks.target import Target
from robbench.core.components import BuildContext, NoParams
from robbench.core.seeding import SampleRNG
from robbench.core.threat import ThreatModel
from robbench.data import load_dataset
from robbench.defenses.none import NoDefense
from robbench.zoo import load_model
from tests.test_projection_identity import _reference_project

BUDGETS = (("linf", 0.1), ("l2", 0.5), ("l1", 2.0))


def main(reps: int = 5, n: int = 128) -> None:
    torch.set_num_threads(1)
    model = load_model("digits-cnn", zoo_dir=ROOT / ".robbench-cache" / "zoo", quiet=True).eval()
    ds = load_dataset("digits")
    data = ds.load("test")
    x, y = data.x[:n], data.y[:n]
    ctx = BuildContext(dataset=ds, device=torch.device("cpu"), classifier=model)
    target = Target(NoDefense(NoParams(), ctx).eval(), gradient="full")
    ids = [str(i) for i in range(n)]
    versions = {"current": threat_module.project, "recorded": _reference_project}
    spent = [0.0]

    def timed_with(fn):  # type: ignore[no-untyped-def]
        def timed(*args: object, **kwargs: object) -> torch.Tensor:
            t0 = time.process_time()
            out = fn(*args, **kwargs)
            spent[0] += time.process_time() - t0
            return out  # type: ignore[no-any-return]

        return timed

    print(f"load {' '.join(load_average())}; PGD-20, {n} digits, 1 thread, best of {reps}, versions alternating")
    print("| norm | eps | projection | CPU ms / image | projection ms / image | projection share |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    try:
        for norm, eps in BUDGETS:
            names = list(versions) if norm != "linf" else ["current"]  # the reference covers L2 / L1
            runs: dict[str, list[tuple[float, float]]] = {k: [] for k in names}
            for rep in range(reps):
                for name in sorted(names, reverse=rep % 2 == 1):
                    threat_module.project = timed_with(versions[name])  # type: ignore[assignment]
                    spent[0] = 0.0
                    t0 = time.process_time()
                    PGD(PGDParams(steps=20)).run(
                        target, x, y, ThreatModel(norm, eps), rng=SampleRNG.for_samples(ids, 0, "b")
                    )  # type: ignore[arg-type]
                    runs[name].append((time.process_time() - t0, spent[0]))
            for name in names:
                total, proj = min(runs[name])
                print(
                    f"| {norm} | {eps:g} | {name} | {1000 * total / n:.3f} | {1000 * proj / n:.3f} "
                    f"| {100 * proj / total:.0f} % |"
                )
    finally:
        threat_module.project = versions["current"]  # type: ignore[assignment]


if __name__ == "__main__":
    main()
