"""Benchmark 3: batched vs looped EoT at k = 8 (goal: batched >= 1.5x faster on CPU).

``Target.loss_grad`` with ``eot=k`` averages the loss gradient over k draws of a stochastic defense.
Batched (the default) replicates the batch k times and runs one forward and backward over k * B
images (chunked to ``eot_chunk``); looped (``eot_batched=False``, the fallback) runs k forwards and
backwards of B images. Both use the same per-sample, per-draw streams, so they compute the same
gradient: the script checks that (max abs difference) before timing.

Settings (built from the registry with each defense's ``example_params``, on digits):

- ``random_noise``: Gaussian noise + the digits CNN (tiny: dispatch-bound);
- ``diffpure``: the tiny digits diffusion model, t* = 0.1, 3 reverse steps (a real purifier),
  gradient ``bpda`` and ``full`` (exact backprop through the reverse chain).

Timed interleaved (looped, batched, looped, ...): per repetition ``--calls`` gradient calls; the
ratio is looped / batched of this process's CPU time (``time.process_time``; robust on a shared
machine with ``--threads 1``): best-of-reps ratio and the median of per-repetition ratios (range);
the wall-time median ratio is printed too.

Run: ``python benchmarks/bench_eot.py --threads 1 [--k 8] [--batch 32] [--reps 7] [--calls 5]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from _common import load_average, median_ci

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ROBBENCH_ZOO_DIR", str(ROOT / ".robbench-cache" / "zoo"))

from robbench.attacks.target import Target
from robbench.core import registry
from robbench.core.components import BuildContext, parse_params
from robbench.core.seeding import SampleRNG
from robbench.data.base import load_dataset
from robbench.zoo import load_model

SETTINGS = [("random_noise", "full"), ("diffpure", "bpda"), ("diffpure", "full")]


def build(name: str, ctx: BuildContext) -> torch.nn.Module:
    cls = registry.defenses.get(name)
    d = cls(parse_params(cls.Params, dict(cls.example_params), name), ctx).eval()
    for p in d.parameters():
        p.requires_grad_(False)
    return d


def grads(
    defense: torch.nn.Module,
    gradient: str,
    x: torch.Tensor,
    y: torch.Tensor,
    ids: list[str],
    k: int,
    batched: bool,
    calls: int,
) -> tuple[torch.Tensor, float, float]:
    rng = SampleRNG.for_samples(ids, 0, "bench-eot")
    t = Target(defense, gradient=gradient, randomness="fresh", rng=rng, eot=k, eot_batched=batched)  # type: ignore[arg-type]
    c0, w0 = time.process_time(), time.perf_counter()
    g = torch.zeros_like(x)
    for _ in range(calls):
        _, g, _ = t.loss_grad(x, y)
    return g, time.process_time() - c0, time.perf_counter() - w0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = load_dataset("digits")
    data = ds.load("test")
    x, y = data.x[: args.batch], data.y[: args.batch]
    ids = [f"s{i}" for i in range(args.batch)]
    ctx = BuildContext(dataset=ds, device=torch.device("cpu"), classifier=load_model("digits-cnn", quiet=True))
    load = load_average()
    print(
        f"EoT k={args.k}, batch {args.batch}, {args.calls} gradient calls per rep, {args.reps} reps, "
        f"torch threads {torch.get_num_threads()}, load {' '.join(load)}"
    )
    print(
        "| defense | gradient | max abs grad diff | best CPU ratio looped/batched | median CPU ratio (range) "
        "| 95 % CI of the median | median wall ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, gradient in SETTINGS:
        defense = build(name, ctx)
        g_loop, _, _ = grads(defense, gradient, x, y, ids, args.k, False, 1)
        g_batch, _, _ = grads(defense, gradient, x, y, ids, args.k, True, 1)
        diff = float((g_loop - g_batch).abs().max())
        cpu = {False: [], True: []}  # type: dict[bool, list[float]]
        wall = {False: [], True: []}  # type: dict[bool, list[float]]
        for rep in range(args.reps):
            for batched in (False, True) if rep % 2 == 0 else (True, False):  # alternate which runs first
                _, c, w = grads(defense, gradient, x, y, ids, args.k, batched, args.calls)
                cpu[batched].append(c)
                wall[batched].append(w)
        ratios = [a / b for a, b in zip(cpu[False], cpu[True], strict=True)]
        wratios = [a / b for a, b in zip(wall[False], wall[True], strict=True)]
        _, lo, hi = median_ci(ratios)
        print(
            f"| {name} | {gradient} | {diff:.2e} | {min(cpu[False]) / min(cpu[True]):.2f} | "
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f}..{max(ratios):.2f}) | {lo:.2f}..{hi:.2f} | "
            f"{statistics.median(wratios):.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
