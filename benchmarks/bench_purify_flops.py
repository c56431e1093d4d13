"""Benchmark 4: PurSAMERE purification FLOP/s utilisation, and how its cost scales.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions,
forward and the input-gradient backward passes the purifier takes). *Achieved* FLOP/s = the
FLOPs of one ``purify`` call / its time (all its other work, Adam updates, projections,
Monte Carlo replication, padding of the last micro-batch, counts as time). The *reference* is
the same score network's best measured FLOP/s for the same kind of work (forward plus input
gradient, weights frozen) over large batches. Goal: achieved >= 70 % of the reference.

Then time per image as the purifier's knobs grow: steps per level, Monte Carlo draws N, image
size (random-weight score networks of one config at 8x8, 16x16, 32x32), and the batch size (a
batch whose B * N is not a multiple of ``micro_batch`` pays for padding).

Settings: ``digits``: the zoo ``digits-score`` network on digits (1x8x8); ``cifar-shape``: a
``score_unet`` (channels 32, depth 2, random weights) on 3x32x32 inputs.

Times are this process's CPU seconds (on a shared machine, with ``--threads 1``, that is the work
done whatever share of a core the process got); "FLOP/s" are FLOPs per CPU second.

Run: ``python benchmarks/bench_purify_flops.py --threads 1 [--reps 3] [--quick]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ROBBENCH_ZOO_DIR", str(ROOT / ".robbench-cache" / "zoo"))


def _median_time(fn, reps: int) -> float:  # type: ignore[no-untyped-def]
    """Median CPU seconds of this process per call (robust on a shared machine; run with --threads 1)."""
    fn()  # warm-up
    ts = []
    for _ in range(reps):
        t0 = time.process_time()
        fn()
        ts.append(time.process_time() - t0)
    return statistics.median(ts)


def _flops(fn) -> int:  # type: ignore[no-untyped-def]
    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def _defense(score_ref: Any, shape: tuple[int, int, int], **params: Any):  # type: ignore[no-untyped-def]
    """A PurSAMERE defense built the way the runner builds it (registry, strict params, context)."""
    from robbench import registry
    from robbench.components import BuildContext, parse_params
    from robbench.data.base import load_dataset
    from robbench.models.base import build_model, init_weights
    from robbench.seeding import generator

    cls = registry.defenses.get("pursamere")
    p = parse_params(cls.Params, {"score_model": score_ref, **params}, "pursamere")
    ctx = BuildContext(dataset=load_dataset("digits"), device=torch.device("cpu"))
    ctx.classifier = init_weights(build_model("small_cnn", in_channels=shape[0]), generator(0)).eval()
    d = cls(p, ctx).eval()
    for q in d.parameters():
        q.requires_grad_(False)
    return d


def _random_score_ref(tmp: Path, channels_in: int, channels: int, depth: int) -> dict[str, Any]:
    from robbench.models.base import build_model, init_weights
    from robbench.seeding import generator

    config = {"in_channels": channels_in, "channels": channels, "depth": depth, "num_scales": 20}
    model = init_weights(build_model("score_unet", **config), generator(3))
    path = tmp / f"score-{channels_in}-{channels}-{depth}.pt"
    torch.save(model.state_dict(), path)
    return {"arch": "score_unet", "checkpoint": str(path), "config": config}


def reference_flops(score: torch.nn.Module, shape: tuple[int, int, int], batches: list[int], reps: int) -> tuple[float, int]:
    """Best FLOP/s of forward + input gradient of ``score`` over ``batches`` (and the best batch)."""
    from robbench.seeding import generator

    best, best_b = 0.0, 0
    for b in batches:
        g = generator(b)
        x = torch.rand((b, *shape), generator=g)
        sig = torch.full((b,), 0.1)

        def work() -> None:
            z = x.clone().requires_grad_(True)
            (gz,) = torch.autograd.grad(score(z, sig).square().sum(), z)

        f = _flops(work)
        t = _median_time(work, reps)
        rate = f / t
        print(f"    reference batch {b:5d}: {f / 1e9:8.2f} GFLOP in {t * 1e3:8.1f} ms = {rate / 1e9:7.1f} GFLOP/s", flush=True)
        if rate > best:
            best, best_b = rate, b
    return best, best_b


def achieved(defense, x: torch.Tensor, reps: int) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(FLOPs, seconds, FLOP/s) of one no-grad purify call on ``x`` (how the runner judges)."""

    def work() -> None:
        with torch.no_grad():
            defense.purify(x)

    f = _flops(work)
    t = _median_time(work, reps)
    return f, t, f / t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer scaling points")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from robbench import registry
    from robbench.data.base import load_dataset
    from robbench.seeding import generator

    if "pursamere" not in registry.defenses.names():
        print("pursamere is not registered: nothing to measure")
        return
    with open("/proc/loadavg") as fh:
        print(f"load average at start: {fh.read().split()[:3]}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    base = {"eps_pur": 0.1, "n_mc": 4, "levels": 6, "steps_per_level": 2, "micro_batch": 64}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        digits = load_dataset("digits").load("test")
        cifar_ref = _random_score_ref(tmp, 3, 32, 2)
        settings = [("digits", "digits-score", (1, 8, 8), digits.x[:64], [64, 256, 1024, 4096]),
                    ("cifar-shape", cifar_ref, (3, 32, 32), torch.rand((32, 3, 32, 32), generator=generator(5)),
                     [64, 128, 256])]
        print("\n== utilisation: achieved FLOP/s of purify (no grad, as judged) vs the network's best ==")
        for label, ref, shape, x, batches in settings:
            d = _defense(ref, shape, **base)
            print(f"[{label}] x {tuple(x.shape)}, params {base}", flush=True)
            best, best_b = reference_flops(d.score_model, shape, batches, args.reps)
            f, t, rate = achieved(d, x, args.reps)
            print(f"  purify: {f / 1e9:.2f} GFLOP in {t:.3f} s = {rate / 1e9:.1f} GFLOP/s; "
                  f"{t / x.shape[0] * 1e3:.1f} ms/image; utilisation {rate / best:.1%} of {best / 1e9:.1f} GFLOP/s "
                  f"(reference batch {best_b})", flush=True)

        print("\n== scaling: time per image (cifar-shape network unless noted) ==")
        x32 = torch.rand((16, 3, 32, 32), generator=generator(6))
        d0 = _defense(cifar_ref, (3, 32, 32), **base)
        _, t0, _ = achieved(d0, x32, args.reps)
        per0 = t0 / x32.shape[0]
        print(f"  baseline {base}, B=16: {per0 * 1e3:.1f} ms/image", flush=True)
        steps = [1, 2, 4] if args.quick else [1, 2, 4, 8]
        for k in steps:
            d = _defense(cifar_ref, (3, 32, 32), **{**base, "steps_per_level": k})
            _, t, _ = achieved(d, x32, args.reps)
            print(f"  steps_per_level {k:2d}: {t / 16 * 1e3:8.1f} ms/image  ({t / t0:.2f}x baseline)", flush=True)
        for n in ([1, 4, 8] if args.quick else [1, 2, 4, 8, 16]):
            d = _defense(cifar_ref, (3, 32, 32), **{**base, "n_mc": n})
            _, t, _ = achieved(d, x32, args.reps)
            print(f"  n_mc {n:2d}:            {t / 16 * 1e3:8.1f} ms/image  ({t / t0:.2f}x baseline)", flush=True)
        for size in [8, 16, 32]:
            ref = cifar_ref if size == 32 else _random_score_ref(tmp, 3, 32, 2)
            d = _defense(ref, (3, size, size), **base)
            xs = torch.rand((16, 3, size, size), generator=generator(7))
            f, t, rate = achieved(d, xs, args.reps)
            print(f"  image 3x{size}x{size}:     {t / 16 * 1e3:8.1f} ms/image  ({t / t0:.2f}x baseline), "
                  f"{f / 16 / 1e9:.2f} GFLOP/image, {rate / 1e9:.1f} GFLOP/s", flush=True)
        for b in [1, 8, 16, 32]:
            xb = torch.rand((b, 3, 32, 32), generator=generator(8))
            _, t, _ = achieved(d0, xb, args.reps)
            print(f"  batch {b:2d} (B*N={b * base['n_mc']:3d}, micro_batch 64): {t / b * 1e3:8.1f} ms/image", flush=True)
    with open("/proc/loadavg") as fh:
        print(f"load average at end: {fh.read().split()[:3]}")


if __name__ == "__main__":
    main()
