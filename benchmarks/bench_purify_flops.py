"""Benchmark 4: PurSAMERE purification FLOP/s utilisation, and how its cost scales.

FLOPs are counted with ``torch.utils.flop_counter``'s formulas (matmuls and convolutions,
forward and the input-gradient backward passes the purifier takes). *Achieved* FLOP/s = the
FLOPs of one ``purify`` call / its time (all its other work, Adam updates, projections,
Monte Carlo replication, padding of the last micro-batch, counts as time). The *reference* is
the same score network's best measured FLOP/s for the same kind of work (forward plus input
gradient, weights frozen) over large batches. Goal: achieved >= 70 % of the reference.

Then time per image as the purifier's knobs grow: steps per level, Monte Carlo draws N, image
size (random-weight score networks of one config at 8x8, 16x16, 32x32), and the batch size (a
batch whose B * N is not a multiple of ``micro_batch`` pays for padding).

Settings: ``digits``: the zoo ``digits-score`` network on digits (1x8x8); ``cifar-shape``: a
``score_unet`` (channels 16, depth 2, random weights) on 3x32x32 inputs.

Times are this process's CPU seconds (on a shared machine, with ``--threads 1``, that is the work
done whatever share of a core the process got); "FLOP/s" are FLOPs per CPU second.

Run: ``python benchmarks/bench_purify_flops.py --threads 1 [--reps 3] [--quick]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import load_average
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ROBBENCH_ZOO_DIR", str(ROOT / ".robbench-cache" / "zoo"))


def _cpu(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def _best_time(fn, reps: int) -> float:  # type: ignore[no-untyped-def]
    """Best-of-``reps`` CPU seconds of this process per call (after a warm-up)."""
    fn()
    return min(_cpu(fn) for _ in range(reps))


class _FlopCount(TorchDispatchMode):
    """Total FLOPs by ``torch.utils.flop_counter``'s per-op formulas (its ``flop_registry``).

    ``FlopCounterMode`` itself cannot be used here: its per-module tracker breaks on the
    ``torch.autograd.grad`` calls w.r.t. leaf inputs that the purifier makes ("A leaf node was passed
    to _will_engine_execute_node ..."); the op-level count is the same without the module breakdown.
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.total += int(count(*args, **kwargs, out_val=out))
        return out


def _flops(fn) -> int:  # type: ignore[no-untyped-def]
    with _FlopCount() as fc:
        fn()
    return fc.total


def _defense(score_ref: Any, shape: tuple[int, int, int], **params: Any):  # type: ignore[no-untyped-def]
    """A PurSAMERE defense built the way the runner builds it (registry, strict params, context)."""
    from robbench.core import registry
    from robbench.core.components import BuildContext, parse_params
    from robbench.core.seeding import generator
    from robbench.data.base import load_dataset
    from robbench.models.base import build_model, init_weights

    cls = registry.defenses.get("pursamere")
    p = parse_params(cls.Params, {"score_model": score_ref, **params}, "pursamere")
    ctx = BuildContext(dataset=load_dataset("digits"), device=torch.device("cpu"))
    ctx.classifier = init_weights(build_model("small_cnn", in_channels=shape[0]), generator(0)).eval()
    d = cls(p, ctx).eval()
    for q in d.parameters():
        q.requires_grad_(False)
    return d


def _random_score_ref(tmp: Path, channels_in: int, channels: int, depth: int) -> dict[str, Any]:
    from robbench.core.seeding import generator
    from robbench.models.base import build_model, init_weights

    config = {"in_channels": channels_in, "channels": channels, "depth": depth, "num_scales": 20}
    model = init_weights(build_model("score_unet", **config), generator(3))
    path = tmp / f"score-{channels_in}-{channels}-{depth}.pt"
    torch.save(model.state_dict(), path)
    return {"arch": "score_unet", "checkpoint": str(path), "config": config}


def _reference_work(score: torch.nn.Module, shape: tuple[int, int, int], b: int):  # type: ignore[no-untyped-def]
    """Forward + input gradient of ``score`` on a batch of ``b`` images (weights frozen)."""
    from robbench.core.seeding import generator

    x = torch.rand((b, *shape), generator=generator(b))
    sig = torch.full((b,), 0.1)

    def work() -> None:
        z = x.clone().requires_grad_(True)
        torch.autograd.grad(score(z, sig).square().sum(), z)

    return work


def _purify_work(defense, x: torch.Tensor):  # type: ignore[no-untyped-def]
    """One no-grad purify call on ``x`` (how the runner judges)."""

    def work() -> None:
        with torch.no_grad():
            defense.purify(x)

    return work


def utilisation(defense, x: torch.Tensor, shape: tuple[int, int, int], batches: list[int], reps: int) -> None:  # type: ignore[no-untyped-def]
    """Purify and the reference batches timed interleaved (best of ``reps`` CPU times each)."""
    works = {f"reference batch {b}": _reference_work(defense.score_model, shape, b) for b in batches}
    works["purify"] = _purify_work(defense, x)
    flops = {k: _flops(w) for k, w in works.items()}
    for w in works.values():
        w()  # warm-up
    best = {k: float("inf") for k in works}
    for _ in range(reps):
        for k, w in works.items():
            best[k] = min(best[k], _cpu(w))
    rates = {k: flops[k] / best[k] for k in works}
    for k in works:
        print(
            f"    {k:<22} {flops[k] / 1e9:8.2f} GFLOP in {best[k] * 1e3:9.1f} ms = {rates[k] / 1e9:6.1f} GFLOP/s",
            flush=True,
        )
    ref_key = max((k for k in works if k != "purify"), key=lambda k: rates[k])
    print(
        f"  purify: {best['purify'] / x.shape[0] * 1e3:.1f} ms/image; utilisation "
        f"{rates['purify'] / rates[ref_key]:.1%} of the network's best {rates[ref_key] / 1e9:.1f} GFLOP/s ({ref_key})",
        flush=True,
    )


def achieved(defense, x: torch.Tensor, reps: int) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(FLOPs, CPU seconds, FLOP/s) of one no-grad purify call on ``x``, best of ``reps``."""
    work = _purify_work(defense, x)
    f = _flops(work)
    t = _best_time(work, reps)
    return f, t, f / t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer scaling points")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from robbench.core import registry
    from robbench.core.seeding import generator
    from robbench.data.base import load_dataset

    if "pursamere" not in registry.defenses.names():
        print("pursamere is not registered: nothing to measure")
        return
    print(f"load average at start: {load_average()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    base = {"eps_pur": 0.1, "n_mc": 4, "levels": 6, "steps_per_level": 2, "micro_batch": 64}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        digits = load_dataset("digits").load("test")
        cifar_ref = _random_score_ref(tmp, 3, 16, 2)
        # (label, score model, image shape, images, reference batches, parameter overrides)
        settings = [
            ("digits", "digits-score", (1, 8, 8), digits.x[:64], [64, 256, 1024], {}),
            (
                "digits, micro_batch 256",
                "digits-score",
                (1, 8, 8),
                digits.x[:64],
                [64, 256, 1024],
                {"micro_batch": 256},
            ),
            ("cifar-shape", cifar_ref, (3, 32, 32), torch.rand((16, 3, 32, 32), generator=generator(5)), [64, 256], {}),
        ]
        print("\n== utilisation: achieved FLOP/s of purify (no grad, as judged) vs the network's best ==")
        for label, ref, shape, x, batches, override in settings:
            params = {**base, **override}
            d = _defense(ref, shape, **params)
            print(f"[{label}] x {tuple(x.shape)}, params {params}", flush=True)
            utilisation(d, x, shape, batches, args.reps)

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
        for n in [1, 4, 8] if args.quick else [1, 2, 4, 8, 16]:
            d = _defense(cifar_ref, (3, 32, 32), **{**base, "n_mc": n})
            _, t, _ = achieved(d, x32, args.reps)
            print(f"  n_mc {n:2d}:            {t / 16 * 1e3:8.1f} ms/image  ({t / t0:.2f}x baseline)", flush=True)
        for size in [8, 16, 32]:
            ref = cifar_ref if size == 32 else _random_score_ref(tmp, 3, 16, 2)
            d = _defense(ref, (3, size, size), **base)
            xs = torch.rand((16, 3, size, size), generator=generator(7))
            f, t, rate = achieved(d, xs, args.reps)
            print(
                f"  image 3x{size}x{size}:     {t / 16 * 1e3:8.1f} ms/image  ({t / t0:.2f}x baseline), "
                f"{f / 16 / 1e9:.2f} GFLOP/image, {rate / 1e9:.1f} GFLOP/s",
                flush=True,
            )
        for b in [1, 16] if args.quick else [1, 8, 16, 32]:
            xb = torch.rand((b, 3, 32, 32), generator=generator(8))
            _, t, _ = achieved(d0, xb, args.reps)
            print(
                f"  batch {b:2d} (B*N={b * base['n_mc']:3d}, micro_batch 64): {t / b * 1e3:8.1f} ms/image", flush=True
            )
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
