"""Benchmark: time per purified image of the score-model purifiers (PurSAMERE, ScoreOpt, ADP).

1. At the quickstart settings: the ``pursamere`` / ``scoreopt`` / ``adp`` entries of
   ``suites/quickstart.yaml`` exactly as written there, on digits with the zoo's score model.
2. How the time grows with the iteration count (PurSAMERE ``steps_per_level``, ScoreOpt and ADP
   ``steps``), the Monte Carlo draws (PurSAMERE ``n_mc``, ScoreOpt ``n_noise``) and the image size
   (the digits score network on 1x8x8 against the same architecture, with the Fashion-MNIST recipe's
   config and random weights, on 1x28x28: time does not depend on the weights).

Each number is the median over ``--reps`` repetitions of one no-grad ``purify`` call on a batch
of ``--batch`` images (how the runner judges), divided by the batch size. Repetitions are
interleaved across all configurations (rep 1 of every config, then rep 2, ...), so load swings on
a shared machine hit every configuration alike; the ratio column compares each configuration with
its group's first row measured in the same run. Times are this process's CPU seconds, so with
``--threads 1`` they measure the work done whatever share of a core the process got.

Run: ``python benchmarks/bench_purify_speed.py --threads 1 [--reps 5] [--batch 64]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from _common import load_average

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ROBBENCH_ZOO_DIR", str(ROOT / ".robbench-cache" / "zoo"))

PURIFIERS = ("pursamere", "scoreopt", "adp")


def quickstart_entries() -> list[tuple[str, str, dict[str, Any]]]:
    """(display id, defense name, params) of the score purifiers in suites/quickstart.yaml."""
    suite = yaml.safe_load((ROOT / "suites" / "quickstart.yaml").read_text())
    return [
        (d.get("id") or d["name"], d["name"], dict(d.get("params") or {}))
        for d in suite["defenses"]
        if d["name"] in PURIFIERS
    ]


def build(name: str, params: dict[str, Any], score_model: Any = None) -> Any:
    """A defense built the way the runner builds it (registry, strict params, checks, context)."""
    from robbench.core import registry
    from robbench.core.components import BuildContext, parse_params
    from robbench.data.base import load_dataset

    cls = registry.defenses.get(name)
    p = parse_params(cls.Params, params, name)
    ctx = BuildContext(dataset=load_dataset("digits"), device=torch.device("cpu"))
    ctx.classifier = ctx.model("digits-cnn")
    if score_model is not None:  # a prepared (random-weight) network under the reference's cache key
        ctx.cache[repr(p.score_model)] = score_model
    d = cls(p, ctx).eval()
    for q in d.parameters():
        q.requires_grad_(False)
    return d


def fashion_shaped_network() -> torch.nn.Module:
    """The fashion_mnist-score architecture and config with random weights (speed only)."""
    from robbench.core.seeding import generator
    from robbench.models.base import build_model, init_weights
    from robbench.zoo import get_recipe

    r = get_recipe("fashion_mnist-score")
    net = init_weights(build_model(r.arch, **r.config), generator(0)).eval()
    for q in net.parameters():
        q.requires_grad_(False)
    return net


def interleaved(jobs: list[tuple[str, Callable[[], None]]], reps: int) -> dict[str, float]:
    """Median CPU seconds per job, repetitions interleaved across jobs (one warm-up each)."""
    for _, fn in jobs:
        fn()
    times: dict[str, list[float]] = {label: [] for label, _ in jobs}
    for _ in range(reps):
        for label, fn in jobs:
            t0 = time.process_time()
            fn()
            times[label].append(time.process_time() - t0)
    return {label: statistics.median(ts) for label, ts in times.items()}


def purify_job(d: Any, x: torch.Tensor) -> Callable[[], None]:
    from robbench.core.seeding import SampleRNG

    def run() -> None:
        rng = SampleRNG.for_samples(range(x.shape[0]), "bench") if d.stochastic else None
        with torch.no_grad():
            d.purify(x, rng=rng)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from robbench.core.seeding import generator
    from robbench.data.base import load_dataset

    load0 = load_average()
    print(
        f"load average at start: {load0}; torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"batch {args.batch}, median of {args.reps} interleaved reps, CPU time"
    )
    x8 = load_dataset("digits").load("test").x[: args.batch]
    x28 = torch.rand((args.batch, 1, 28, 28), generator=generator(5))
    fashion_net = fashion_shaped_network()

    groups: list[tuple[str, list[tuple[str, Any]]]] = []
    quick = quickstart_entries()
    groups.append(
        (
            "quickstart settings (suites/quickstart.yaml), digits 1x8x8",
            [
                (
                    f"{did}: " + ", ".join(f"{k}={v}" for k, v in params.items() if k != "score_model"),
                    (build(name, params), x8),
                )
                for did, name, params in quick
            ],
        )
    )
    by_name = {name: params for _, name, params in quick}
    for name, step_key, steps, mc_key, draws in [
        ("pursamere", "steps_per_level", [1, 2, 4], "n_mc", [1, 2, 4, 8]),
        ("scoreopt", "steps", [2, 5, 10], "n_noise", [1, 2, 4]),
        ("adp", "steps", [2, 5, 10], None, []),
    ]:
        base = by_name.get(name)
        if base is None:
            continue
        rows = [(f"{step_key}={k}", (build(name, {**base, step_key: k}), x8)) for k in steps]
        groups.append((f"{name}: iterations (others as in quickstart)", rows))
        if mc_key:
            rows = [(f"{mc_key}={k}", (build(name, {**base, mc_key: k}), x8)) for k in draws]
            groups.append((f"{name}: Monte Carlo draws", rows))
        rows = [
            ("1x8x8 (digits-score)", (build(name, base), x8)),
            (
                "1x28x28 (fashion_mnist-score config)",
                (build(name, {**base, "score_model": "fashion_mnist-score"}, score_model=fashion_net), x28),
            ),
        ]
        groups.append((f"{name}: image size", rows))

    jobs = [(f"{g}|{label}", purify_job(d, x)) for g, rows in groups for label, (d, x) in rows]
    med = interleaved(jobs, args.reps)
    for g, rows in groups:
        print(f"\n{g}")
        print(f"  {'configuration':<62} {'ms/image':>9} {'ratio':>6} {'evals/image':>12}")
        first = None
        for label, (d, x) in rows:
            t = med[f"{g}|{label}"] / x.shape[0]
            first = first or t
            d.evals = 0
            purify_job(d, x)()
            print(f"  {label:<62} {t * 1e3:9.2f} {t / first:6.2f} {d.evals / x.shape[0]:12.0f}")
    print(f"\nload average at end: {load_average()}")


if __name__ == "__main__":
    main()
