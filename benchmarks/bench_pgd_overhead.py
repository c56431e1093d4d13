"""Benchmark 1: robbench PGD (Linf, 20 steps) vs a bare PyTorch PGD loop on the same model and data.

Two comparisons, each interleaved (bare, robbench, bare, robbench, ...) so machine load hits
both sides alike. The headline ratio is of the best CPU times of this process over the repetitions
(robust on a shared machine when run with ``--threads 1``); medians of per-repetition CPU and wall
ratios are printed beside it:

- *attack*: ``PGD.run`` through robbench's ``Target`` (what an attack costs inside robbench:
  per-sample seeded random start, best-iterate tracking, loss trace) vs a bare Madry loop;
- *unit*: a whole work unit through the runner (attack + containment check + judging clean and
  adversarial + rows + one parquet shard written atomically) vs the bare loop plus the two
  prediction passes it needs to report clean and robust accuracy.

Settings: ``digits`` (the zoo ``digits-cnn`` on 8x8 scikit-learn digits, tiny: overhead-bound),
``cifar-shape`` (``small_cnn`` with 3 input channels, random weights, on 3x32x32 inputs of the CIFAR-10
shape: compute-bound, closer to real suites). torchattacks' PGD is measured too when installed.

Run: ``python benchmarks/bench_pgd_overhead.py --threads 1 [--reps 7] [--n 256] [--batch 128]``
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
import torch.nn.functional as F
import yaml
from _common import load_average, median_ci
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ROBBENCH_ZOO_DIR", str(ROOT / ".robbench-cache" / "zoo"))

from robbench.attacks.pgd import PGD, PGDParams
from robbench.attacks.target import Target
from robbench.core.seeding import SampleRNG, generator
from robbench.core.threat import ThreatModel

STEPS = 20


def bare_pgd(
    model: nn.Module, x: Tensor, y: Tensor, eps: float, alpha: float, steps: int, gen: torch.Generator
) -> Tensor:
    """The textbook Linf PGD loop (random start, sign steps, clip to ball and [0, 1])."""
    x_adv = (x + (torch.rand(x.shape, generator=gen) * 2 - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + alpha * grad.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


class _Undefended(nn.Module):
    """The ``none`` defense for the attack-only comparison (built without a suite)."""

    stochastic = False

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.classifier = model
        self.evals = 0

    def purify(self, x: Tensor, *, rng: SampleRNG | None = None) -> Tensor:
        return x

    def classify(self, x: Tensor) -> Tensor:
        self.evals += x.shape[0]
        return self.classifier(x)  # type: ignore[no-any-return]

    def forward(self, x: Tensor, rng: SampleRNG | None = None) -> Tensor:
        return self.classify(self.purify(x, rng=rng))

    def grad_checkpointing(self, enabled: bool) -> None:
        return None


def _time(fn) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(wall seconds, CPU seconds of this process) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def _compare(name: str, bare, ours, reps: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Interleaved repetitions; ratios robbench / bare of this process's CPU time and of wall time.

    On a shared machine CPU time is the robust measure (with one torch thread it is the work done,
    whatever share of the cores the process got), and the best of the repetitions the least
    disturbed (as ``timeit`` recommends): the headline ratio is best robbench / best bare CPU time.
    """
    bare()  # warm-up
    ours()
    wall, cpu = [], []
    tb, to = [], []
    for rep in range(reps):
        if rep % 2 == 0:  # alternate which runs first, so that a drift within a repetition cancels
            bw, bc = _time(bare)
            ow, oc = _time(ours)
        else:
            ow, oc = _time(ours)
            bw, bc = _time(bare)
        tb.append(bc)
        to.append(oc)
        wall.append(ow / bw)
        cpu.append(oc / bc)
    res = {
        "bare_cpu_s": min(tb),
        "robbench_cpu_s": min(to),
        "ratio_min": min(to) / min(tb),
        "ratio_cpu": statistics.median(cpu),
        "ratio_wall": statistics.median(wall),
    }
    _, lo, hi = median_ci(cpu)
    res.update(ratio_cpu_ci_low=lo, ratio_cpu_ci_high=hi)
    print(
        f"  {name:<36} CPU best of {reps}: bare {res['bare_cpu_s'] * 1e3:8.1f} ms  robbench {res['robbench_cpu_s'] * 1e3:8.1f} ms"
        f"  ratio {res['ratio_min']:.3f};  median per-rep ratio: CPU {res['ratio_cpu']:.3f} ({min(cpu):.3f}..{max(cpu):.3f};"
        f" 95% CI of the median {lo:.3f}..{hi:.3f}), wall {res['ratio_wall']:.3f} ({min(wall):.3f}..{max(wall):.3f})",
        flush=True,
    )
    return res


def _runner_unit(tmp: Path, x: Tensor, y: Tensor, model_ref: dict | str, dataset: str, eps: float, batch: int):  # type: ignore[no-untyped-def,type-arg]
    """A unit runner and one unit of a PGD-20 cell on the given samples."""
    from robbench.results.store import ResultsDir
    from robbench.run.plan import Plan, Unit
    from robbench.run.unit import UnitRunner
    from robbench.suite.load import parse_suite

    suite = {
        "name": "bench",
        "seed": 0,
        "data": {"dataset": dataset, "split": "test", "n_samples": x.shape[0]},
        "classifier": model_ref,
        "threats": [{"norm": "linf", "eps": eps}],
        "defenses": [{"name": "none"}],
        "attacks": [{"id": "PGD20", "name": "pgd", "params": {"steps": STEPS}}],
        "evaluation": {"batch_size": batch},
    }
    text = yaml.safe_dump(suite)
    plan = Plan(parse_suite(text), suite_text=text)
    ex = UnitRunner(plan, ResultsDir(tmp / "res"), torch.device("cpu"), batch)
    cell = plan.cells[0]
    unit = Unit(cell, list(range(x.shape[0])))
    return ex, unit


def bench_setting(
    label: str, model: nn.Module, x: Tensor, y: Tensor, eps: float, batch: int, reps: int, unit_factory=None
) -> None:  # type: ignore[no-untyped-def]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    threat = ThreatModel("linf", eps)
    alpha = 2.5 * eps / STEPS
    attack = PGD(PGDParams(steps=STEPS))
    target = Target(_Undefended(model), gradient="full")  # type: ignore[arg-type]
    ids = [f"s{i}" for i in range(x.shape[0])]
    batches = [(x[i : i + batch], y[i : i + batch], ids[i : i + batch]) for i in range(0, x.shape[0], batch)]

    def bare() -> None:
        g = generator(0)
        for xb, yb, _ in batches:
            bare_pgd(model, xb, yb, eps, alpha, STEPS, g)

    def ours() -> None:
        for xb, yb, ib in batches:
            attack.run(target, xb, yb, threat, rng=SampleRNG.for_samples(ib, 0, "bench"))

    print(
        f"[{label}] x {tuple(x.shape)}, batch {batch}, Linf eps {eps:g}, {STEPS} steps, "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )
    _compare("attack: PGD.run via Target", bare, ours, reps)
    try:
        import torchattacks
    except ImportError:
        print("  torchattacks PGD                   not installed (pip install 'robbench[torchattacks]')")
    else:
        ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=STEPS, random_start=True)

        def tattack() -> None:
            for xb, yb, _ in batches:
                ta(xb, yb)

        _compare("attack: torchattacks.PGD (vs bare)", bare, tattack, reps)
    if unit_factory is not None:
        ex, unit = unit_factory()

        def bare_unit() -> None:
            g = generator(0)
            for xb, yb, _ in batches:
                adv = bare_pgd(model, xb, yb, eps, alpha, STEPS, g)
                with torch.no_grad():
                    (model(xb).argmax(1) == yb).sum().item()
                    (model(adv).argmax(1) == yb).sum().item()

        def our_unit() -> None:
            ex.run_unit(unit)

        _compare("unit: runner (judge + rows + shard)", bare_unit, our_unit, reps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--n", type=int, default=256, help="samples per setting")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--n-cifar", type=int, default=64, help="samples of the cifar-shape setting")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--only", choices=["digits", "cifar-shape"], default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average at start: {load_average()}")
    from robbench.data.base import load_dataset
    from robbench.models.base import build_model, init_weights
    from robbench.zoo import load_model

    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "digits"):
            data = load_dataset("digits").load("test")
            x, y = data.x[: args.n], data.y[: args.n]
            model = load_model("digits-cnn", quiet=True)
            bench_setting(
                "digits",
                model,
                x,
                y,
                0.1,
                args.batch,
                args.reps,
                lambda: _runner_unit(Path(tmp) / "d", x, y, "digits-cnn", "digits", 0.1, args.batch),
            )
        if args.only in (None, "cifar-shape"):
            g = generator(1)
            model = init_weights(build_model("small_cnn", in_channels=3, width=32), g)
            n = min(args.n, args.n_cifar)
            x = torch.rand(n, 3, 32, 32, generator=g)
            y = torch.randint(0, 10, (n,), generator=g)
            bench_setting("cifar-shape", model, x, y, 8 / 255, min(args.batch, n), args.reps)
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
