"""Benchmark 5: full-gradient attack peak memory with and without checkpointing, vs purifier steps.

One full-gradient attack step (``Target.loss_grad`` with ``gradient: full``: exact backprop through
every reverse step of DiffPure on the digits diffusion model, then the digits CNN) per configuration
(reverse steps x checkpointing on/off), each in a **fresh subprocess** so allocations do not mix.

Method (CPU; no CUDA here): the child loads the models, runs one forward without a graph as a
warm-up (lazy initialisation, the forward's own working memory) and one gradient call on two images (the
backward and checkpoint machinery), then reads its current resident set
size (``/proc/self/statm``) as the baseline, runs the measured gradient call, and reads its peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``). The reported number is
peak minus baseline, the memory the gradient call added at its peak. Because ``ru_maxrss`` is a
process-lifetime maximum, the child also reports the peak before the measured call; if that is
higher, the call's own peak is hidden and the row says so (never happened in the recorded runs).
On CUDA, ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` would be the direct
measure (the runner records it per row as ``peak_mem_mb``). The gradients with and without
checkpointing must be equal (checked through their norm, printed).

Run: ``python benchmarks/bench_full_grad_memory.py [--steps 5 10 20 40] [--batch 64] [--t-star 0.2]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from _common import load_average

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ROBBENCH_ZOO_DIR", str(ROOT / ".robbench-cache" / "zoo"))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def child(steps: int, checkpoint: bool, batch: int, t_star: float, model: str) -> None:
    import torch

    torch.set_num_threads(1)
    from robbench.attacks.target import Target
    from robbench.core import registry
    from robbench.core.components import BuildContext, parse_params
    from robbench.core.seeding import SampleRNG
    from robbench.data.base import load_dataset
    from robbench.zoo import load_model

    ds = load_dataset("digits")
    data = ds.load("test")
    x, y = data.x[:batch], data.y[:batch]
    ids = [f"s{i}" for i in range(batch)]
    ctx = BuildContext(dataset=ds, device=torch.device("cpu"), classifier=load_model("digits-cnn", quiet=True))
    cls = registry.defenses.get("diffpure")
    d = cls(
        parse_params(cls.Params, {"diffusion_model": model, "t_star": t_star, "steps": steps}, "diffpure"), ctx
    ).eval()
    for p in d.parameters():
        p.requires_grad_(False)

    def one(n: int) -> torch.Tensor:
        t = Target(
            d, gradient="full", randomness="det", rng=SampleRNG.for_samples(ids[:n], 0, "mem"), checkpoint=checkpoint
        )
        _, g, _ = t.loss_grad(x[:n], y[:n])
        return g

    with torch.no_grad():  # warm-up without a graph: lazy inits and the forward's working memory
        d(x, SampleRNG.for_samples(ids, 0, "mem"))
    one(2)  # warm-up of the backward (and checkpoint) machinery on two images: a small peak
    import gc

    gc.collect()
    base, before = _rss_bytes(), _peak_bytes()
    t0 = time.process_time()
    g = one(batch)
    cpu = time.process_time() - t0
    after = _peak_bytes()
    print(
        json.dumps(
            {
                "steps": steps,
                "checkpoint": checkpoint,
                "added_mb": (after - base) / 2**20,
                "hidden": before >= after,
                "baseline_mb": base / 2**20,
                "cpu_s": cpu,
                "grad_norm": float(g.norm()),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 40])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--t-star", type=float, default=0.2)
    ap.add_argument("--model", default="digits-diffusion")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.steps[0], bool(args.checkpoint), args.batch, args.t_star, args.model)
        return
    load = load_average()
    print(
        f"full-gradient step through DiffPure ({args.model}, t*={args.t_star}, DDPM), batch {args.batch} digits, "
        f"1 thread, fresh subprocess per row, load {' '.join(load)}"
    )
    print(
        "| reverse steps | added peak RSS, no checkpointing (MiB) | with checkpointing (MiB) | ratio | "
        "CPU s no ckpt / ckpt | grad norms equal |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for steps in args.steps:
        res = {}
        for ck in (0, 1):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    "--steps",
                    str(steps),
                    "--checkpoint",
                    str(ck),
                    "--batch",
                    str(args.batch),
                    "--t-star",
                    str(args.t_star),
                    "--model",
                    args.model,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            res[ck] = json.loads(out.stdout.strip().splitlines()[-1])
        a, b = res[0], res[1]
        hidden = " (hidden by an earlier peak)" if a["hidden"] or b["hidden"] else ""
        same = abs(a["grad_norm"] - b["grad_norm"]) <= 1e-5 * max(1.0, abs(a["grad_norm"]))
        print(
            f"| {steps} | {a['added_mb']:.1f} | {b['added_mb']:.1f}{hidden} | {a['added_mb'] / max(b['added_mb'], 1e-9):.1f}x | "
            f"{a['cpu_s']:.2f} / {b['cpu_s']:.2f} | {same} ({a['grad_norm']:.4g}) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
