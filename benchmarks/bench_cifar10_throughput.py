"""CIFAR-10 defenses at the published model sizes: images/s of a defended forward and of one attack step.

The defenses of ``suites/cifar10.yaml`` (PurSAMERE at 8/255, ADP, DiffPure, RDC) with its settings, built on
random-weight checkpoints at the published sizes in the official layouts (``tests/cifar10_fixtures.py`` writes
them: WRN-28-10, NCSNv2, score_sde's DDPM++ deep, EDM's DDPM++): the weights are random, the arithmetic is the
real one. Per defense, on CIFAR-shaped random images:

- ``infer``: images/s of one defended forward (purification + classification, no gradient);
- ``full-grad step``: images/s of one full-gradient loss-and-gradient call (``Target.loss_grad``, gradient
  ``full``), the cost of one step of full-gradient PGD (+EoT per draw);
- ``BPDA-det step``: images/s of one BPDA step (purify without gradient, classifier gradient).

Wall time after one warm-up call, CUDA synchronised; the best of ``--reps``. This is issue 15's GPU
throughput check (``benchmarks/gpu_check.sh`` runs it on CUDA); on a CPU use a small ``--n``.

Run: ``python benchmarks/bench_cifar10_throughput.py --device cuda [--n 64] [--batch 16] [--reps 3] [--defenses ...]``
(``--smoke``: the smoke suite's small models, a dry run of this script on a CPU; its figures mean nothing).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from _common import load_average

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robbench.attacks.target import Target
from robbench.core import registry
from robbench.core.components import BuildContext, parse_params
from robbench.core.seeding import SampleRNG
from robbench.data.base import load_dataset
from robbench.zoo import load_model
from tests.cifar10_fixtures import write_checkpoints

DEFENSES = ("pursamere-8", "adp", "diffpure", "rdc")


def _with_paths(obj: Any, root: Path) -> Any:
    """The suite's checkpoint paths made absolute under ``root`` (where the fixtures were written)."""
    if isinstance(obj, dict):
        return {k: (str(root / v) if k == "checkpoint" else _with_paths(v, root)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_with_paths(v, root) for v in obj]
    return obj


def _timed(fn: Callable[[], Any], device: torch.device, reps: int) -> float:
    """Best wall seconds of ``fn`` over ``reps`` after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(d: Any, x: torch.Tensor, y: torch.Tensor, ids: list[str], batch: int, reps: int) -> dict[str, str]:
    """Images/s of each operation over all of x in micro-batches of ``batch``; "OOM" where memory ran out."""
    n, dev = x.shape[0], x.device
    chunks = [slice(s, s + batch) for s in range(0, n, batch)]
    rngs = [SampleRNG.for_samples(ids[c], 0, "bench-cifar10") if d.stochastic else None for c in chunks]

    def infer() -> None:
        with torch.no_grad():
            for c, rng in zip(chunks, rngs, strict=True):
                d(x[c], rng)

    def step(mode: str) -> None:
        for c, rng in zip(chunks, rngs, strict=True):
            Target(d, gradient=mode, randomness="det", rng=rng).loss_grad(x[c], y[c])

    out = {}
    for name, fn in (("infer", infer), ("full", lambda: step("full")), ("bpda", lambda: step("bpda"))):
        try:
            out[name] = f"{n / _timed(fn, dev, reps):.2f}"
        except torch.OutOfMemoryError:
            out[name] = f"OOM at batch {batch}"
            torch.cuda.empty_cache()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16, help="images per call (RDC's full gradient is memory-bound)")
    ap.add_argument("--defenses", default=",".join(DEFENSES))
    ap.add_argument("--smoke", action="store_true", help="the smoke suite's small models (a quick dry run on a CPU)")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"load average at start: {load_average()}; device {device}; torch {torch.__version__}")
    root = Path(tempfile.mkdtemp(prefix="c10-bench-"))
    write_checkpoints(root / "checkpoints" / ("cifar10-smoke" if args.smoke else "cifar10"), smoke=args.smoke)
    name = "cifar10_smoke.yaml" if args.smoke else "cifar10.yaml"
    suite = _with_paths(yaml.safe_load((ROOT / "suites" / name).read_text()), root)
    ds = load_dataset("cifar10")
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.n, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (args.n,), generator=gen).to(device)
    ids = [f"bench-{i}" for i in range(args.n)]
    ctx = BuildContext(dataset=ds, device=device, classifier=load_model(suite["classifier"], device=device))
    print("\n| defense | infer img/s | full-grad step img/s | BPDA-det step img/s |\n| --- | --- | --- | --- |")
    for entry in suite["defenses"]:
        did = entry.get("id", entry["name"])
        if did not in args.defenses.split(","):
            continue
        cls = registry.defenses.get(entry["name"])
        p = parse_params(cls.Params, dict(entry.get("params", {})), did)
        d = cls(p, ctx).eval().to(device)
        for q in d.parameters():
            q.requires_grad_(False)
        r = measure(d, x, y, ids, args.batch, args.reps)
        print(f"| {did} | {r['infer']} | {r['full']} | {r['bpda']} |", flush=True)


if __name__ == "__main__":
    main()
