"""Benchmark: the honest-defaults fixes of issue 13, before and after, on the same models and samples.

1. gray-box PGD-20 Linf 0.1 on PurSAMERE and ADP (quickstart settings): the old rule (keep the first
   iterate that fools the classifier alone, reimplemented here) vs robbench's final iterate;
2. L1 on the undefended digits CNN at L1 2 and 4: the old sparse step (top 5 % of all coordinates,
   reimplemented), the box-aware step (robbench's), with 8 restarts, and APGD-L1 (pyautoattack);
3. one judge draw vs worst of 4, from the stored Fashion-MNIST BPDA20-fresh rows (results/fashion_mnist);
4. AutoAttack-rand on the ``random_phase`` canary: the library's evaluation (one draw decides, clean
   image for unbroken points, reimplemented as the old call) vs robbench's every-point run, beside PGD+EoT(4).

Every accuracy is judged the same way on both sides: the real defense, worst of 4 seeded judge draws for
a stochastic defense. Run: ``python benchmarks/bench_honesty.py --threads 1 [--n 128]``
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from _common import load_average

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robbench.attacks.pgd import PGD, PGDParams, random_start, steepest_step
from robbench.attacks.target import Target
from robbench.core.components import BuildContext, NoParams, parse_params
from robbench.core.registry import defenses
from robbench.core.seeding import SampleRNG
from robbench.core.threat import ThreatModel
from robbench.data import load_dataset
from robbench.defenses.none import NoDefense
from robbench.zoo import load_model


def _rng(n: int, tag: str) -> SampleRNG:
    return SampleRNG.for_samples([str(i) for i in range(n)], 0, tag)


def judged(defense: Any, x: torch.Tensor, y: torch.Tensor, draws: int = 4) -> float:
    """Accuracy % on the real defense: worst of ``draws`` seeded draws for a stochastic one."""
    ok = torch.ones(len(y), dtype=torch.bool)
    with torch.no_grad():
        for d in range(draws if defense.stochastic else 1):
            rng = _rng(len(y), f"judge-{d}") if defense.stochastic else None
            ok &= defense(x, rng).argmax(1) == y
    return 100 * float(ok.float().mean())


def old_graybox(target: Target, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel) -> torch.Tensor:
    """The pre-fix rule: the first iterate that fools the classifier alone (else the last)."""
    steps, alpha = 20, 2.5 * threat.eps / 20
    x_adv, best = random_start(x, threat, _rng(len(y), "attack")), x.clone()
    found = torch.zeros(len(y), dtype=torch.bool)
    for _ in range(steps):
        _, grad, logits = target.loss_grad(x_adv, y, "ce")
        wrong = (logits.argmax(1) != y) & ~found
        best[wrong], found = x_adv[wrong].detach(), found | wrong
        x_adv = threat.project(x_adv + alpha * steepest_step(grad, "linf", 0.95), x)
    best[~found] = x_adv[~found].detach()
    return best


def bench_graybox(ctx: BuildContext, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    threat, out = ThreatModel("linf", 0.1), []
    settings = {
        "pursamere": {"score_model": "digits-score", "eps_pur": 0.1, "n_mc": 1, "sigma_range": [0.15, 0.04]},
        "adp": {"score_model": "digits-score", "steps": 3},
    }
    for name, params in settings.items():
        cls = defenses.get(name)
        d = cls(parse_params(cls.Params, params, name), ctx).eval()
        rng = _rng(len(y), "attack-defense") if d.stochastic else None
        old = old_graybox(Target(d, gradient="classifier", rng=rng), x, y, threat)
        new = PGD(PGDParams(steps=20)).run(
            Target(d, gradient="classifier", rng=rng), x, y, threat, rng=_rng(len(y), "attack")
        )
        out.append(f"| 1 | {name} gPGD20 Linf 0.1 | {judged(d, old, y):.1f} | {judged(d, new, y):.1f} |")
    return out


def old_l1_step(grad: torch.Tensor, sparsity: float = 0.95) -> torch.Tensor:
    g = grad.flatten(1)
    k = max(1, round((1 - sparsity) * g.shape[1]))
    top = g.abs().topk(k, dim=1).indices
    return (torch.zeros_like(g).scatter_(1, top, g.gather(1, top).sign()) / k).view(grad.shape)


def bench_l1(ctx: BuildContext, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    import pyautoattack

    import robbench.attacks.pgd as pgd

    model, out = ctx.classifier, []
    assert model is not None
    undefended = NoDefense(NoParams(), ctx).eval()
    for eps in (2.0, 4.0):
        threat = ThreatModel("l1", eps)
        accs = []
        original = pgd.steepest_step
        pgd.steepest_step = lambda g, norm, s, x_=None: old_l1_step(g, s)  # type: ignore[assignment]
        try:
            adv = PGD(PGDParams(steps=20)).run(Target(undefended), x, y, threat, rng=_rng(len(y), "attack"))
        finally:
            pgd.steepest_step = original
        accs.append(judged(undefended, adv, y))
        for restarts in (1, 8):
            adv = PGD(PGDParams(steps=20, restarts=restarts)).run(
                Target(undefended), x, y, threat, rng=_rng(len(y), "attack")
            )
            accs.append(judged(undefended, adv, y))
        aa = pyautoattack.AutoAttack(
            model, norm="L1", eps=eps, version="custom", attacks=["apgd-ce"], seed=0, device="cpu"
        )
        aa.verbose = False
        ref = aa.run_standard_evaluation(x, y)
        accs.append(judged(undefended, ref[0] if isinstance(ref, tuple) else ref, y))
        out.append(
            f"| 2 | undefended CNN L1 {eps:g}: old PGD-20 / box-aware PGD-20 / box-aware 8 restarts / APGD-L1 | "
            f"{accs[0]:.1f} | {accs[1]:.1f} / {accs[2]:.1f} (APGD-L1 {accs[3]:.1f}) |"
        )
    return out


def bench_draws() -> list[str]:
    from robbench.report.summary import summarize
    from robbench.results.load import load_results

    res = ROOT / "results" / "fashion_mnist"
    if not (res / "manifest.json").exists():
        return ["| 3 | results/fashion_mnist not present | | |"]
    loaded = load_results(res)
    single = summarize(loaded.rows, loaded.manifest, scoring="single", worst_case=False)
    worst = summarize(loaded.rows, loaded.manifest, scoring="worst", worst_case=False)
    out = []
    for (_, a), (_, b) in zip(single.iterrows(), worst.iterrows(), strict=True):
        if a["attack"] == "BPDA20-fresh" and int(a["n"]) > 0:
            out.append(
                f"| 3 | {a['defense']} BPDA20-fresh (n={int(a['n'])}) one draw / worst of 4 | "
                f"{100 * a['accuracy']:.1f} | {100 * b['accuracy']:.1f} |"
            )
    return out


def bench_aa_rand(ctx: BuildContext, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    from robbench.attacks.autoattack import AutoAttack, AutoAttackParams, build_autoattack

    cls = defenses.get("random_phase")
    d = cls(parse_params(cls.Params, {"amplitude": 0.05, "frequency": 60.0}, "random_phase"), ctx).eval()
    threat, n = ThreatModel("linf", 0.1), len(y)
    p = AutoAttackParams(version="rand", apgd_iter=10, eot_iter=4, batching="batch")
    target = Target(d, randomness="fresh", rng=_rng(n, "attack-defense"))
    new = AutoAttack(p).run(target, x, y, threat, rng=_rng(n, "attack"))
    aa = build_autoattack(
        Target(d, randomness="fresh", rng=_rng(n, "attack-defense")).as_module(), p, threat, 0, x.device
    )
    old, _ = aa.run_standard_evaluation(x, y, batch_size=n)
    eot = PGD(PGDParams(steps=10)).run(
        Target(d, gradient="full", randomness="fresh", rng=_rng(n, "attack-defense"), eot=4),
        x,
        y,
        threat,
        rng=_rng(n, "attack"),
    )
    return [
        f"| 4 | random_phase AutoAttack-rand (APGD 10 it, EoT 4; PGD10+EoT4: {judged(d, eot, y):.1f}) | "
        f"{judged(d, old, y):.1f} | {judged(d, new, y):.1f} |"
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--zoo-dir", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start, load0 = time.time(), load_average()
    ds = load_dataset("digits")
    data = ds.load("test")
    model = load_model("digits-cnn", zoo_dir=args.zoo_dir, quiet=True).eval()
    ctx = BuildContext(dataset=ds, device=torch.device("cpu"), classifier=model, zoo_dir=args.zoo_dir)
    x, y = data.x[: args.n], data.y[: args.n]
    lines = ["| item | cell | before % | after % |", "| --- | --- | --- | --- |"]
    lines += bench_graybox(ctx, x, y)
    lines += bench_l1(ctx, data.x, data.y)  # the whole test split, as the L1 acceptance test
    lines += bench_draws()
    lines += bench_aa_rand(ctx, x[:64], y[:64])
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {' '.join(load0)} -> {' '.join(load_average())}, "
        f"{time.time() - start:.0f} s, threads {args.threads}, n {args.n}"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
