"""Benchmark 2: AutoAttack through robbench vs pyautoattack called directly (goal <= 1.05x, same flags).

Same model (the zoo ``digits-cnn``), same samples, same seed: robbench's ``autoattack`` attack with
``batching: batch`` seeds pyautoattack with ``batch_seed`` of the samples' suite-derived seeds; the
direct call is given that seed, so both run the same trajectories and must return identical robust
flags (robbench's ``adv_correct`` rows, judged by the runner, vs ``model(x_adv).argmax() == y``).

Timed, interleaved (direct, robbench, direct, ...), medians of this process's CPU time (robust on
a shared machine with ``--threads 1``; the wall-time ratio is printed too):

- robbench: one work unit through the runner (AutoAttack on ``Target.as_module()`` of the ``none``
  defense, containment check, judging clean and adversarial, rows, shard);
- direct: ``pyautoattack.AutoAttack(model, ...).run_standard_evaluation(x, y, batch_size=n)`` plus the
  robust flags.

Also reported (not a like-for-like ratio): robbench's default ``batching: sample`` (one pyautoattack
call per sample, seeded per sample, so rows do not depend on the batch size) against the same direct
batched call.

Run: ``python benchmarks/bench_autoattack_overhead.py --threads 1 [--n 64] [--reps 3] [--version standard]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from _common import load_average

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ROBBENCH_ZOO_DIR", str(ROOT / ".robbench-cache" / "zoo"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--version", default="standard", choices=["standard", "plus"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip-sample", action="store_true", help="skip the batching: sample measurement")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from robbench.core import registry

    if "autoattack" not in registry.attacks.names():
        print("the autoattack attack is not registered: nothing to measure")
        return
    try:
        import pyautoattack
    except ImportError:
        print("pyautoattack not installed (pip install 'robbench[autoattack]')")
        return
    from robbench.attacks._thirdparty import batch_seed
    from robbench.core.seeding import SampleRNG
    from robbench.results.store import ResultsDir
    from robbench.run.plan import Plan, Unit
    from robbench.run.unit import UnitRunner
    from robbench.suite.load import parse_suite

    print(
        f"load average at start: {load_average()}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"pyautoattack {getattr(pyautoattack, '__version__', '?')}"
    )

    def make(batching: str, tmp: Path):  # type: ignore[no-untyped-def]
        suite = {
            "name": "bench-aa",
            "seed": 0,
            "data": {"dataset": "digits", "split": "test", "n_samples": args.n},
            "classifier": "digits-cnn",
            "threats": [{"norm": "linf", "eps": args.eps}],
            "defenses": [{"name": "none"}],
            "attacks": [{"id": "AA", "name": "autoattack", "params": {"version": args.version, "batching": batching}}],
            "evaluation": {"batch_size": args.n},
        }
        text = yaml.safe_dump(suite)
        plan = Plan(parse_suite(text), suite_text=text)
        rd = ResultsDir(tmp / f"res-{batching}")
        ex = UnitRunner(plan, rd, torch.device("cpu"), args.n)
        return ex, Unit(plan.cells[0], list(range(args.n))), rd

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        ex, unit, rd = make("batch", tmp)
        data = ex.data
        x, y = data.x, data.y
        model = ex.components.ctx.classifier
        assert model is not None
        seeds = SampleRNG.for_samples(data.ids, 0, unit.cell.id, "attack").seeds
        seed = batch_seed(seeds)

        def direct() -> torch.Tensor:
            aa = pyautoattack.AutoAttack(
                model, norm="Linf", eps=args.eps, version=args.version, seed=seed, device="cpu"
            )
            aa.verbose = False
            with torch.random.fork_rng(devices=[]):  # the same global-RNG treatment robbench gives it
                torch.random.manual_seed(seed)
                x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=args.n)
            with torch.no_grad():
                return model(x_adv).argmax(1) == y  # type: ignore[no-any-return]

        def ours() -> None:
            ex.run_unit(unit)

        flags = direct()
        ours()
        rows = rd.read_rows().sort_values("sample_index")
        ours_flags = torch.tensor(rows["adv_correct"].tolist())
        same = int((ours_flags == flags).sum())
        print(
            f"[digits, n={args.n}, Linf {args.eps:g}, version {args.version}] robust: direct {int(flags.sum())}/{args.n}, "
            f"robbench {int(ours_flags.sum())}/{args.n}; identical flags on {same}/{args.n} samples",
            flush=True,
        )
        td, to, ratios, wall = [], [], [], []
        for _ in range(args.reps):
            w0, t0 = time.perf_counter(), time.process_time()
            direct()
            td.append(time.process_time() - t0)
            wd = time.perf_counter() - w0
            w0, t0 = time.perf_counter(), time.process_time()
            ours()
            to.append(time.process_time() - t0)
            wall.append((time.perf_counter() - w0) / wd)
            ratios.append(to[-1] / td[-1])
        print(
            f"  batching batch:  CPU: direct {statistics.median(td):7.2f} s   robbench unit {statistics.median(to):7.2f} s   "
            f"ratio {statistics.median(ratios):.3f}  (per rep {', '.join(f'{r:.3f}' for r in ratios)});  "
            f"wall ratio {statistics.median(wall):.3f}",
            flush=True,
        )
        if not args.skip_sample:
            ex_s, unit_s, _ = make("sample", tmp)
            t0 = time.process_time()
            ex_s.run_unit(unit_s)
            ts = time.process_time() - t0
            print(
                f"  batching sample (default; one call per sample): robbench unit {ts:7.2f} CPU s = "
                f"{ts / statistics.median(td):.2f}x the direct batched call",
                flush=True,
            )
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
