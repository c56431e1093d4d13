"""Do ``--compile``, ``--channels-last`` and bf16 autocast help? Measured on this machine's CPU.

Each variant is what the run option does (``robbench.run.accel.prepare_model`` / ``autocast_module``)
applied to a fresh copy of the same network; the timed work is the work robbench does with it:

- classifier: one PGD step = forward + input gradient (weights frozen), batch 128;
- score network: forward + input gradient (what PurSAMERE's purification does), batch 64.

Variants run interleaved (eager, compiled, channels-last, ... per repetition); ratios are medians of
per-repetition ratios against eager, in this process's CPU time (robust on a shared machine with
``--threads 1``). ``torch.compile``'s one-off compilation (wall) time is reported apart.

Run: ``python benchmarks/bench_compile.py [--reps 5] [--threads 1]``
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from _common import load_average
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _work_classifier(model: nn.Module, x: Tensor, y: Tensor) -> None:
    z = x.clone().requires_grad_(True)
    (_g,) = torch.autograd.grad(nn.functional.cross_entropy(model(z), y), z)


def _work_score(model: nn.Module, x: Tensor, sigma: Tensor) -> None:
    z = x.clone().requires_grad_(True)
    (_g,) = torch.autograd.grad(model(z, sigma).square().sum(), z)


def bench(label: str, base: nn.Module, work, reps: int) -> None:  # type: ignore[no-untyped-def]
    from robbench.run.accel import autocast_module, prepare_model

    def variant(compile: bool = False, channels_last: bool = False, bf16: bool = False) -> nn.Module:
        m = copy.deepcopy(base).eval()
        for p in m.parameters():
            p.requires_grad_(False)
        if bf16:
            autocast_module(m, "bf16")
        return prepare_model(m, compile=compile, channels_last=channels_last)

    variants = {
        "eager": variant(),
        "compile": variant(compile=True),
        "channels_last": variant(channels_last=True),
        "bf16 autocast": variant(bf16=True),
    }
    if getattr(base, "sigmas", None) is None:
        del variants["bf16 autocast"]  # robbench autocasts generative models only
    first: dict[str, float] = {}
    for name, m in variants.items():
        t0 = time.perf_counter()
        work(m)
        first[name] = time.perf_counter() - t0
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(reps):
        for name, m in variants.items():
            t0 = time.process_time()
            work(m)
            times[name].append(time.process_time() - t0)
    print(f"[{label}]")
    for name, ts in times.items():
        ratios = [e / t for e, t in zip(times["eager"], ts)]
        print(
            f"  {name:<14} {statistics.median(ts) * 1e3:9.1f} ms   speed-up vs eager {statistics.median(ratios):5.2f}x "
            f"(per rep {min(ratios):.2f}..{max(ratios):.2f}); first call {first[name]:.1f} s",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from robbench.core.seeding import generator
    from robbench.models.base import build_model, init_weights

    print(f"load average at start: {load_average()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    g = generator(0)
    x8, y = torch.rand(128, 1, 8, 8, generator=g), torch.randint(0, 10, (128,), generator=g)
    bench(
        "classifier small_cnn (digits shape 1x8x8, width 32), PGD step, batch 128",
        init_weights(build_model("small_cnn"), g),
        lambda m: _work_classifier(m, x8, y),
        args.reps,
    )
    x32 = torch.rand(128, 3, 32, 32, generator=g)
    bench(
        "classifier small_cnn (CIFAR shape 3x32x32, width 64), PGD step, batch 128",
        init_weights(build_model("small_cnn", in_channels=3, width=64), g),
        lambda m: _work_classifier(m, x32, y),
        args.reps,
    )
    xs, sig = torch.rand(64, 3, 32, 32, generator=g), torch.full((64,), 0.1)
    bench(
        "score_unet (CIFAR shape, channels 32, depth 2), forward + input gradient, batch 64",
        init_weights(build_model("score_unet", in_channels=3, channels=32, depth=2), g),
        lambda m: _work_score(m, xs, sig),
        args.reps,
    )
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
