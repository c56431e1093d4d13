"""Zoo trainers that craft inputs on the fly: PGD adversarial training (``adversarial``) and
PurSAMERE's classifier augmentation (``classifier_augment``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robbench.core.budget import Norm
from robbench.core.seeding import SampleRNG
from robbench.core.threat import ThreatModel, parse_eps
from robbench.data.base import DataSplit
from robbench.zoo.loop import Checkpointer, resumed_batches
from robbench.zoo.train import accuracy, trainer


def pgd_examples(
    model: nn.Module, x: Tensor, y: Tensor, threat: ThreatModel, steps: int, step_size: float, rng: SampleRNG
) -> Tensor:
    """Madry's training-time PGD: random start in the ball, ``steps`` steepest-ascent steps on the
    cross-entropy, exact projection onto ball ∩ [0, 1]; returns the last iterate.

    The start, the step direction and the projection are robbench's PGD attack's own
    (:func:`robbench.attacks.pgd.random_start`, :func:`~robbench.attacks.pgd.steepest_step`,
    :meth:`robbench.core.threat.ThreatModel.project`).
    """
    from robbench.attacks.pgd import random_start, steepest_step

    x_adv = random_start(x, threat, rng)
    for _ in range(steps):
        xg = x_adv.detach().requires_grad_(True)
        loss = F.cross_entropy(model(xg), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xg)
        x_adv = threat.project(x_adv.detach() + step_size * steepest_step(grad, threat.norm, 0.95), x)
    return x_adv.detach()


def _threat(cfg: dict[str, Any]) -> ThreatModel:
    return ThreatModel(cast(Norm, str(cfg.get("norm", "linf"))), parse_eps(cfg.get("eps", 0.1)))


def pgd_accuracy(
    model: nn.Module, dataset: Any, test: DataSplit, threat: ThreatModel, steps: int, seed: int, batch_size: int = 256
) -> float:
    """Accuracy under robbench's own PGD attack (``steps`` steps, one restart) on the undefended model."""
    from robbench.attacks.pgd import PGD
    from robbench.attacks.target import Target
    from robbench.core.components import BuildContext
    from robbench.defenses.none import NoDefense

    model.eval()
    ctx = BuildContext(dataset=dataset, device=torch.device("cpu"), suite_seed=seed, classifier=model)
    defense = NoDefense(NoDefense.Params(), ctx)
    attack = PGD(PGD.Params(steps=steps))
    correct = 0
    for i in range(0, len(test), batch_size):
        x, y = test.x[i : i + batch_size], test.y[i : i + batch_size]
        rng = SampleRNG.for_samples(test.ids[i : i + batch_size], seed, "zoo-eval-pgd")
        x_adv = attack.run(Target(defense, gradient="full"), x, y, threat, rng=rng)
        with torch.no_grad():
            correct += int((model(x_adv).argmax(1) == y).sum())
    return correct / max(1, len(test))


def _lr_schedule(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)


@trainer("adversarial")
def train_adversarial(
    model: nn.Module,
    recipe: Any,
    train: DataSplit,
    test: DataSplit,
    progress: Callable[[int, float], None],
    zoo_dir: Any = None,
    dataset: Any = None,
    checkpoint_every: int | None = None,
    checkpointer: Checkpointer | None = None,
    **_: Any,
) -> dict[str, Any]:
    """PGD adversarial training (Madry et al. 2018): cross-entropy on PGD examples of each batch.

    Train config: ``steps``, ``batch_size`` (64), ``lr`` (1e-3, Adam, cosine decay), ``norm``
    (linf), ``eps`` (0.1; a number or "8/255"), ``attack_steps`` (7), ``attack_step_size``
    (default 2.5 * eps / attack_steps), ``eval_steps`` (20), ``eval_samples`` (all). The examples
    are crafted with the model in eval mode from per-sample random starts seeded by (seed, step,
    sample). Metrics: clean test accuracy, and accuracy under robbench's PGD attack with
    ``eval_steps`` steps on the first ``eval_samples`` test images.
    """
    cfg = recipe.train
    steps, bs, lr = int(cfg.get("steps", 1000)), int(cfg.get("batch_size", 64)), float(cfg.get("lr", 1e-3))
    threat = _threat(cfg)
    k = int(cfg.get("attack_steps", 7))
    alpha = parse_eps(cfg["attack_step_size"]) if "attack_step_size" in cfg else 2.5 * threat.eps / k
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = _lr_schedule(opt, steps)
    ckpt = checkpointer or Checkpointer(recipe, zoo_dir, steps, checkpoint_every)
    start = ckpt.restore(model, opt, sched=sched)
    for step, idx in resumed_batches(len(train), bs, steps, recipe.seed, start):
        x, y = train.x[idx], train.y[idx]
        model.eval()
        rng = SampleRNG.for_samples(idx.tolist(), recipe.seed, "adv-start", step)
        x_adv = pgd_examples(model, x, y, threat, k, alpha, rng)
        model.train()
        loss = F.cross_entropy(model(x_adv), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        sched.step()
        progress(step + 1, loss.item())
        ckpt.save(step + 1, model, opt, sched=sched)
    model.eval()
    metrics: dict[str, Any] = {
        "test_accuracy": accuracy(model, test.x, test.y),
        "train_accuracy": accuracy(model, train.x, train.y),
    }
    eval_steps = int(cfg.get("eval_steps", 20))
    n = min(len(test), int(cfg.get("eval_samples", len(test))))
    sub = test if n == len(test) else test.subset(list(range(n)))
    metrics[f"pgd{eval_steps}_accuracy_{threat.id}"] = pgd_accuracy(
        model, dataset, sub, threat, eval_steps, recipe.seed
    )
    metrics["pgd_eval_samples"] = n
    return metrics


def build_augment_defense(recipe: Any, model: nn.Module, dataset: Any, zoo_dir: Any) -> Any:
    """The purifier of an augmentation recipe, built through the defense registry.

    ``train.defense`` (default ``pursamere``) with ``train.defense_params``; a defense whose
    parameters have a ``sam`` switch gets ``sam: false`` (PurSAMERE section 4 trains without SAM).
    """
    from robbench.core.components import BuildContext, parse_params
    from robbench.core.registry import defenses

    cfg = recipe.train
    name = str(cfg.get("defense", "pursamere"))
    cls = defenses.get(name)
    raw = dict(cfg.get("defense_params") or {})
    if "sam" in cls.Params.model_fields:
        raw["sam"] = False
    params = parse_params(cls.Params, raw, f"zoo recipe {recipe.name}: train.defense_params")
    ctx = BuildContext(
        dataset=dataset,
        device=torch.device("cpu"),
        suite_seed=recipe.seed,
        classifier=model,
        zoo_dir=str(zoo_dir) if zoo_dir else None,
    )
    cls.check_params(params, ctx)
    defense = cls(params, ctx)
    defense.eval()
    return defense


def purify_split(defense: Any, split: DataSplit, seed: int, batch_size: int = 256) -> Tensor:
    """Purified copies of every image of ``split`` (per-sample streams for a stochastic purifier)."""
    out = []
    for i in range(0, len(split), batch_size):
        x = split.x[i : i + batch_size]
        rng = SampleRNG.for_samples(split.ids[i : i + batch_size], seed, "augment") if defense.stochastic else None
        out.append(defense.purify(x, rng=rng).detach().clamp(0, 1))
    return torch.cat(out)


@trainer("classifier_augment")
def train_classifier_augment(
    model: nn.Module,
    recipe: Any,
    train: DataSplit,
    test: DataSplit,
    progress: Callable[[int, float], None],
    zoo_dir: Any = None,
    dataset: Any = None,
    checkpoint_every: int | None = None,
    checkpointer: Checkpointer | None = None,
    **_: Any,
) -> dict[str, Any]:
    """PurSAMERE's classifier augmentation (section 4): cross-entropy on clean and purified samples.

    Every training image is purified once by the recipe's defense (``train.defense``, default
    ``pursamere``, with ``train.defense_params``; SAM switched off). The purifier does not depend
    on the classifier, so purifying the set once equals purifying each batch when it is drawn;
    it is recomputed (deterministically) when a killed run resumes. Each step's loss is the mean
    of the cross-entropies on the clean batch and on its purified copies. Train config: ``steps``,
    ``batch_size`` (64), ``lr`` (1e-3, Adam, cosine decay). Metrics: test accuracy on clean and on
    purified test images.
    """
    cfg = recipe.train
    steps, bs, lr = int(cfg.get("steps", 1000)), int(cfg.get("batch_size", 64)), float(cfg.get("lr", 1e-3))
    defense = build_augment_defense(recipe, model, dataset, zoo_dir)
    x_pur = purify_split(defense, train, recipe.seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = _lr_schedule(opt, steps)
    ckpt = checkpointer or Checkpointer(recipe, zoo_dir, steps, checkpoint_every)
    start = ckpt.restore(model, opt, sched=sched)
    model.train()
    for step, idx in resumed_batches(len(train), bs, steps, recipe.seed, start):
        y = train.y[idx]
        loss = (F.cross_entropy(model(train.x[idx]), y) + F.cross_entropy(model(x_pur[idx]), y)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        sched.step()
        progress(step + 1, loss.item())
        ckpt.save(step + 1, model, opt, sched=sched)
    model.eval()
    test_pur = purify_split(defense, test, recipe.seed)
    return {
        "test_accuracy": accuracy(model, test.x, test.y),
        "purified_test_accuracy": accuracy(model, test_pur, test.y),
        "train_accuracy": accuracy(model, train.x, train.y),
    }
