"""Diffusion-model defenses side by side: time and model evaluations per image.

For each defense (the digits configurations of ``suites/digits_diffusion.yaml`` by default, or
every defense's ``example_params`` with ``--example``), on digits test images with the zoo's
``digits-cnn`` classifier:

- ``evals/img``: network images evaluated per input image by one defended forward (purification +
  classification; the runner reports the same counter per row as ``model_evals``);
- ``infer``: CPU time per image of one defended forward without gradients (``defense(x, rng)``);
- ``grad``: CPU time per image of one full-gradient loss-and-gradient call (``Target.loss_grad``,
  gradient ``full``, reverse steps checkpointed), i.e. the cost of one step of a full-gradient PGD;
- ratios to the undefended classifier (``none``) measured in the same run.

Timed interleaved (each repetition runs every defense once), best of ``--reps`` repetitions of this
process's CPU time (``time.process_time``, robust on a shared machine with ``--threads 1``); the
median wall time per image is printed too.

Run: ``python benchmarks/bench_diffusion_defenses.py --threads 1 [--n 64] [--batch 32] [--reps 3] [--example]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from _common import load_average

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ROBBENCH_ZOO_DIR", str(ROOT / ".robbench-cache" / "zoo"))

from robbench.attacks.target import Target
from robbench.core import registry
from robbench.core.components import BuildContext, parse_params
from robbench.core.seeding import SampleRNG
from robbench.data.base import load_dataset
from robbench.zoo import load_model

NAMES = ("none", "diffpure", "gdmp", "agdm", "rdc")


def configs(example: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(display id, registered name, params) for each defense, in NAMES order."""
    if example:
        return [(n, n, dict(registry.defenses.get(n).example_params)) for n in NAMES]
    suite = yaml.safe_load((ROOT / "suites" / "digits_diffusion.yaml").read_text())
    out = [(d.get("id", d["name"]), d["name"], dict(d.get("params", {}))) for d in suite["defenses"]]
    return sorted(out, key=lambda c: NAMES.index(c[1]) if c[1] in NAMES else len(NAMES))


def build(name: str, params: dict[str, Any], ctx: BuildContext) -> Any:
    cls = registry.defenses.get(name)
    p = parse_params(cls.Params, params, name)
    cls.check_params(p, ctx)
    d = cls(p, ctx).eval()
    for q in d.parameters():
        q.requires_grad_(False)
    return d


def infer(d: Any, x: torch.Tensor, ids: list[str], batch: int) -> tuple[float, float, float]:
    """(CPU s, wall s, evals) of one defended forward over all of x."""
    e0, c0, w0 = d.evals, time.process_time(), time.perf_counter()
    with torch.no_grad():
        for s in range(0, x.shape[0], batch):
            rng = SampleRNG.for_samples(ids[s : s + batch], 0, "bench-diffusion") if d.stochastic else None
            d(x[s : s + batch], rng)
    return time.process_time() - c0, time.perf_counter() - w0, d.evals - e0


def grad(d: Any, x: torch.Tensor, y: torch.Tensor, ids: list[str], batch: int) -> tuple[float, float]:
    """(CPU s, wall s) of one full-gradient loss_grad call over all of x (checkpointing on)."""
    c0, w0 = time.process_time(), time.perf_counter()
    for s in range(0, x.shape[0], batch):
        rng = SampleRNG.for_samples(ids[s : s + batch], 0, "bench-diffusion") if d.stochastic else None
        t = Target(d, gradient="full", randomness="det", rng=rng)
        _, g, _ = t.loss_grad(x[s : s + batch], y[s : s + batch])
        assert torch.isfinite(g).all()
    d.grad_checkpointing(False)
    return time.process_time() - c0, time.perf_counter() - w0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--example", action="store_true", help="use each defense's example_params (tiny models)")
    ap.add_argument("--no-grad", action="store_true", help="skip the full-gradient timing")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average at start: {load_average()}; torch threads: {torch.get_num_threads()}")
    ds = load_dataset("digits")
    split = ds.load("test")
    x, y = split.x[: args.n], split.y[: args.n]
    ids = split.ids[: args.n]
    ctx = BuildContext(dataset=ds, device=torch.device("cpu"), classifier=load_model("digits-cnn", quiet=True))
    cfgs = configs(args.example)
    defenses = {did: build(name, params, ctx) for did, name, params in cfgs}
    res: dict[str, dict[str, list[float]]] = {
        did: {"ic": [], "iw": [], "gc": [], "gw": [], "ev": []} for did in defenses
    }
    for rep in range(args.reps):
        for did, d in defenses.items():
            ic, iw, ev = infer(d, x, ids, args.batch)
            r = res[did]
            r["ic"].append(ic / args.n)
            r["iw"].append(iw / args.n)
            r["ev"].append(ev / args.n)
            if not args.no_grad:
                gc, gw = grad(d, x, y, ids, args.batch)
                r["gc"].append(gc / args.n)
                r["gw"].append(gw / args.n)
        print(f"repetition {rep + 1}/{args.reps} done", file=sys.stderr)
    base = res.get("none")
    print(
        f"\ndigits, {args.n} test images, batch {args.batch}, best of {args.reps} (CPU ms per image); "
        f"x none = ratio to the undefended classifier in this run\n"
    )
    print(
        "| defense | params | evals/img | infer CPU ms | x none | infer wall ms (median) | full-grad step CPU ms | x none |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for did, _name, params in cfgs:
        r = res[did]
        ic = min(r["ic"]) * 1e3
        ib = min(base["ic"]) * 1e3 if base else float("nan")
        gc = min(r["gc"]) * 1e3 if r["gc"] else float("nan")
        gb = min(base["gc"]) * 1e3 if base and base["gc"] else float("nan")
        shown = ", ".join(f"{k}={v}" for k, v in params.items() if k not in ("diffusion_model", "aux_model")) or "-"
        print(
            f"| {did} | {shown} | {statistics.median(r['ev']):.0f} | {ic:.2f} | {ic / ib:.1f} | "
            f"{statistics.median(r['iw']) * 1e3:.2f} | {gc:.2f} | {gc / gb:.1f} |"
        )


if __name__ == "__main__":
    main()
