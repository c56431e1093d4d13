"""Benchmark: robbench vs ART vs foolbox, side by side on equal work: CPU time per image and strength.

Every comparison runs the tools on the same model, samples, budget, steps and step size
(``2.5 * eps / steps``), one random start uniform in the ball each (every tool draws it from its own
generator: robbench per sample, ART from numpy's global RNG, foolbox from torch's, both seeded here
before every run), interleaved per repetition with the order rotated and reversed, timed by this
process's CPU time. Every tool's output is judged the same way: robbench's real defense, the same
seeded judge draws (worst of ``--draws`` for a stochastic defense), containment by robbench's
``ThreatModel.contains`` (an image outside the ball counts as the clean image).

- ``pgd``: PGD-20 Linf, L2 and L1 on the undefended zoo ``digits-cnn`` (digits test set) and on a
  CIFAR-shaped ``small_cnn`` (3x32x32, random weights, uniform random images labelled by the
  network's own prediction, so clean accuracy is 100 % and the attack must flip its decision);
  at L1 foolbox's ``SparseL1DescentAttack`` (robbench's sparsity 0.95) is run beside its L1 PGD.
- ``eot``: PGD-20 + EoT(8) on DiffPure (``digits-diffusion``, quickstart settings), full gradient
  and BPDA, each through the tool's own EoT mechanism: robbench's ``Target(eot=8)`` (batched), ART's
  ``EoTPyTorch`` preprocessor (its per-image loop; BPDA as a straight-through forward, which is how
  ART's PyTorch path takes a BPDA estimate), foolbox's ``ExpectationOverTransformationWrapper``
  (logits averaged over 8 looped forwards; foolbox has no BPDA mechanism). ``robbench-nockpt`` is
  robbench without the per-step gradient checkpointing its runner always asks for.

Run: ``python benchmarks/bench_peers.py --threads 1 [--reps 7] [--only pgd|eot]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from _common import load_average, median_ci
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ROBBENCH_ZOO_DIR", str(ROOT / ".robbench-cache" / "zoo"))

from robbench.attacks.pgd import PGD, PGDParams
from robbench.attacks.target import Target
from robbench.core.seeding import SampleRNG, derive_seed, generator
from robbench.core.threat import ThreatModel
from robbench.defenses.base import Defense

SEED = 0
PEERS = {"art": "adversarial-robustness-toolbox", "foolbox": "foolbox"}
#: the quickstart's budgets on digits; on the random CIFAR-shaped net budgets where robust accuracy is mid-range
BUDGETS = {"digits": {"linf": 0.1, "l2": 0.5, "l1": 2.0}, "cifar-shape": {"linf": 2 / 255, "l2": 0.5, "l1": 12.0}}
DIFFPURE = {"diffusion_model": "digits-diffusion", "t_star": 0.05, "steps": 5}
Runner = Callable[[], Tensor]


def missing_peers() -> list[str]:
    """The pip names of the peer libraries that do not import here."""
    out = []
    for module, package in PEERS.items():
        try:
            __import__(module)
        except ImportError:
            out.append(package)
    return out


@dataclass
class Case:
    """One comparison: a robbench defense, samples, a threat and the attack's settings."""

    label: str
    defense: Defense
    x: Tensor
    y: Tensor
    ids: list[str]
    threat: ThreatModel
    steps: int
    batch: int
    eot: int = 1
    gradient: str = "full"
    draws: int = 1

    @property
    def alpha(self) -> float:
        return 2.5 * self.threat.eps / self.steps

    def slices(self) -> Iterator[slice]:
        for s in range(0, self.x.shape[0], self.batch):
            yield slice(s, s + self.batch)


# ---- the three tools ---------------------------------------------------------------------------
def robbench_runner(case: Case, checkpoint: bool = True) -> Runner:
    attack = PGD(PGDParams(steps=case.steps, step_size=case.alpha))

    def run() -> Tensor:
        out = []
        for sl in case.slices():
            ids = case.ids[sl]
            rng = SampleRNG.for_samples(ids, SEED, "attack-defense") if case.defense.stochastic else None
            target = Target(
                case.defense,
                gradient=case.gradient,
                rng=rng,
                eot=case.eot,
                checkpoint=checkpoint,  # type: ignore[arg-type]
            )
            out.append(attack.run(target, case.x[sl], case.y[sl], case.threat, rng=SampleRNG.for_samples(ids, SEED)))
        return torch.cat(out)

    return run


def _art_eot(case: Case, counter: list[int]):  # type: ignore[no-untyped-def]
    """ART's EoT preprocessor around the purifier: one fresh seeded draw per image and sample."""
    from art.preprocessing.expectation_over_transformation.pytorch import EoTPyTorch

    d, bpda = case.defense, case.gradient == "bpda"

    class Purify(EoTPyTorch):  # type: ignore[misc]
        def _transform(self, x: Tensor, y: Tensor | None, **kwargs: object) -> tuple[Tensor, Tensor | None]:
            counter[0] += 1
            rng = SampleRNG([derive_seed(SEED, "art", counter[0])])
            if not bpda:
                return d.purify(x, rng=rng), y
            with torch.no_grad():
                p = d.purify(x.detach(), rng=rng)
            return x + (p - x).detach(), y  # forward: the purified image; backward: the identity

    return Purify(nb_samples=case.eot, clip_values=(0.0, 1.0))


def art_runner(case: Case) -> Runner:
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    counter = [0]
    pre = [_art_eot(case, counter)] if case.defense.stochastic else None
    clf = PyTorchClassifier(
        case.defense.classifier,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(case.x.shape[1:]),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        preprocessing_defences=pre,
        device_type="cpu",
    )
    norm = {"linf": np.inf, "l2": 2, "l1": 1}[case.threat.norm]
    attack = ProjectedGradientDescent(
        clf, norm=norm, eps=case.threat.eps, eps_step=case.alpha, max_iter=case.steps, num_random_init=1,
        batch_size=case.batch, verbose=False,
    )  # fmt: skip

    def run() -> Tensor:
        np.random.seed(SEED)  # ART draws its random start from numpy's global generator
        counter[0] = 0
        case.defense.grad_checkpointing(False)
        return torch.from_numpy(attack.generate(case.x.numpy(), case.y.numpy()))

    return run


class _Draws(nn.Module):
    """The defense as one module for foolbox: a fresh seeded draw of its randomness per call."""

    def __init__(self, defense: Defense) -> None:
        super().__init__()
        self.defense = defense
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        if not self.defense.stochastic:
            return self.defense(x)  # type: ignore[no-any-return]
        rng = SampleRNG([derive_seed(SEED, "foolbox", self.calls, i) for i in range(x.shape[0])])
        return self.defense(x, rng)  # type: ignore[no-any-return]


def foolbox_runner(case: Case, slide: bool = False) -> Runner:
    import foolbox as fb

    module = _Draws(case.defense).eval()
    model = fb.PyTorchModel(module, bounds=(0.0, 1.0), device="cpu")
    if case.eot > 1:
        model = fb.models.ExpectationOverTransformationWrapper(model, n_steps=case.eot)
    kw = {"abs_stepsize": case.alpha, "steps": case.steps, "random_start": True}
    if slide:
        attack = fb.attacks.SparseL1DescentAttack(quantile=0.95, **kw)
    else:
        attack = {"linf": fb.attacks.LinfPGD, "l2": fb.attacks.L2PGD, "l1": fb.attacks.L1PGD}[case.threat.norm](**kw)

    def run() -> Tensor:
        torch.manual_seed(SEED)  # foolbox draws its random start from torch's global generator
        module.calls = 0
        case.defense.grad_checkpointing(False)
        out = [attack(model, case.x[sl], case.y[sl], epsilons=case.threat.eps)[1] for sl in case.slices()]
        return torch.cat(out)

    return run


def tools_for(case: Case) -> dict[str, Runner]:
    tools = {"robbench": robbench_runner(case), "art": art_runner(case)}
    if case.defense.stochastic and case.gradient == "full":
        tools["robbench-nockpt"] = robbench_runner(case, checkpoint=False)
    if case.gradient == "full":  # foolbox has no BPDA mechanism
        tools["foolbox"] = foolbox_runner(case)
    if case.threat.norm == "l1":
        tools["foolbox-slide"] = foolbox_runner(case, slide=True)
    return tools


# ---- judging and timing ------------------------------------------------------------------------
@torch.no_grad()
def judge(case: Case, x_adv: Tensor) -> tuple[float, int]:
    """(robust accuracy %, images outside the ball) by robbench's real defense, worst of the draws."""
    inside = case.threat.contains(x_adv, case.x)
    xj = torch.where(inside.view(-1, *[1] * (case.x.ndim - 1)), x_adv.float(), case.x)
    ok = torch.ones_like(inside)
    for j in range(case.draws if case.defense.stochastic else 1):
        for sl in case.slices():
            rng = SampleRNG.for_samples(case.ids[sl], SEED, "judge", j) if case.defense.stochastic else None
            ok[sl] &= case.defense(xj[sl], rng).argmax(1) == case.y[sl]
    return 100.0 * ok.float().mean().item(), int((~inside).sum())


def compare(case: Case, reps: int) -> dict[str, dict[str, object]]:
    """Each tool once untimed (judged), then ``reps`` timed repetitions in rotating order."""
    tools = tools_for(case)
    names = list(tools)
    res: dict[str, dict[str, object]] = {}
    for name in names:
        acc, outside = judge(case, tools[name]())
        res[name] = {"robust": acc, "outside": outside, "cpu": []}
    for rep in range(reps):
        k = rep % len(names)
        order = names[k:] + names[:k]
        for name in order[::-1] if rep % 2 else order:
            c0 = time.process_time()
            tools[name]()
            res[name]["cpu"].append((time.process_time() - c0) / case.x.shape[0])  # type: ignore[attr-defined]
    return res


def report(case: Case, res: dict[str, dict[str, object]], rows: list[str]) -> None:
    """Print one line per tool and append markdown rows: time, strength, robbench / tool ratio."""
    ours = res["robbench"]["cpu"]
    mode = f"{case.gradient}+EoT({case.eot})" if case.defense.stochastic else "PGD"
    for name, r in res.items():
        cpu: list[float] = r["cpu"]  # type: ignore[assignment]
        med = float(np.median(cpu)) * 1e3
        if name == "robbench":
            ratio = "1"
        else:
            m, lo, hi = median_ci([a / b for a, b in zip(ours, cpu)])  # type: ignore[arg-type]
            ratio = f"{m:.3f} ({lo:.3f}..{hi:.3f})"
        line = (
            f"| {case.label} | {case.threat.label} {mode}-{case.steps} | {name} | {med:.3f} "
            f"({min(cpu) * 1e3:.3f}..{max(cpu) * 1e3:.3f}) | {r['robust']:.1f} | {r['outside']} | {ratio} |"
        )
        print(line, flush=True)
        rows.append(line)
    peers = [n for n in res if not n.startswith("robbench")]
    fastest = min(peers, key=lambda n: float(np.median(res[n]["cpu"])))  # type: ignore[arg-type]
    strongest = min(peers, key=lambda n: res[n]["robust"])  # type: ignore[arg-type,return-value]
    m, lo, hi = median_ci([a / b for a, b in zip(ours, res[fastest]["cpu"])])  # type: ignore[arg-type]
    gap = res["robbench"]["robust"] - res[strongest]["robust"]  # type: ignore[operator]
    print(
        f"  goals: time robbench / fastest peer ({fastest}) {m:.3f} (CI {lo:.3f}..{hi:.3f}) [<= 1.0: "
        f"{'met' if m <= 1.0 else 'MISSED'}]; robust robbench - strongest peer ({strongest}) {gap:+.1f} points "
        f"[<= +1: {'met' if gap <= 1.0 else 'MISSED'}]",
        flush=True,
    )


# ---- settings ----------------------------------------------------------------------------------
def build_defense(name: str, params: dict[str, object], classifier: nn.Module) -> Defense:
    """A robbench defense built as the runner builds it (eval mode, frozen parameters)."""
    from robbench.core import registry
    from robbench.core.components import BuildContext, parse_params
    from robbench.data.base import load_dataset

    cls = registry.defenses.get(name)
    ctx = BuildContext(
        dataset=load_dataset("digits"),
        device=torch.device("cpu"),
        classifier=classifier,
        zoo_dir=os.environ["ROBBENCH_ZOO_DIR"],
    )
    d: Defense = cls(parse_params(cls.Params, params, name), ctx)
    d.eval()
    for p in d.parameters():
        p.requires_grad_(False)
    return d


def digits(n: int) -> tuple[nn.Module, Tensor, Tensor, list[str]]:
    from robbench.data.base import load_dataset
    from robbench.zoo import load_model

    data = load_dataset("digits").load("test")
    model = load_model("digits-cnn", quiet=True).eval()
    return model, data.x[:n], data.y[:n], data.ids[:n]


def cifar_shape(n: int) -> tuple[nn.Module, Tensor, Tensor, list[str]]:
    from robbench.models.base import build_model, init_weights

    g = generator(1)
    model = init_weights(build_model("small_cnn", in_channels=3, width=32), g).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(n, 3, 32, 32, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y, [f"cifar-shape/{i}" for i in range(n)]


def pgd_cases(args: argparse.Namespace) -> Iterator[Case]:
    for label, (model, x, y, ids) in (("digits", digits(args.n)), ("cifar-shape", cifar_shape(args.n_cifar))):
        defense = build_defense("none", {}, model)
        for norm, eps in BUDGETS[label].items():
            yield Case(label, defense, x, y, ids, ThreatModel(norm, eps), args.steps, min(args.batch, len(ids)))  # type: ignore[arg-type]


def eot_cases(args: argparse.Namespace) -> Iterator[Case]:
    model, x, y, ids = digits(args.n_eot)
    defense = build_defense("diffpure", DIFFPURE, model)
    threat = ThreatModel("linf", BUDGETS["digits"]["linf"])
    for gradient in ("full", "bpda"):
        yield Case("digits diffpure", defense, x, y, ids, threat, args.steps, len(ids), args.eot, gradient, args.draws)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions of the PGD comparisons")
    ap.add_argument("--eot-reps", type=int, default=3, help="timed repetitions of the EoT comparisons")
    ap.add_argument("--n", type=int, default=364, help="digits images (PGD)")
    ap.add_argument("--n-cifar", type=int, default=64, help="CIFAR-shaped images (PGD)")
    ap.add_argument("--n-eot", type=int, default=16, help="digits images (EoT on DiffPure)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--eot", type=int, default=8)
    ap.add_argument("--draws", type=int, default=4, help="judge draws of the stochastic defense (worst of m)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--only", choices=["pgd", "eot"], default=None)
    args = ap.parse_args(argv)
    missing = missing_peers()
    if missing:
        print(f"missing peer libraries: {', '.join(missing)} (pip install -c constraints.txt -e '.[bench]')")
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average at start: {load_average()}  threads {torch.get_num_threads()}", flush=True)
    print(
        "| setting | attack | tool | CPU ms / image, median (range) | robust % | outside ball | robbench / tool, median (95 % CI) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows: list[str] = []
    if args.only in (None, "pgd"):
        for case in pgd_cases(args):
            report(case, compare(case, args.reps), rows)
    if args.only in (None, "eot"):
        for case in eot_cases(args):
            report(case, compare(case, args.eot_reps), rows)
    print(f"load average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
