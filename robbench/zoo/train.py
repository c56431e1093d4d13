"""Zoo trainers. Deterministic given the recipe's seed: weights and data order come from explicit
generators; no dropout; CPU kernels are deterministic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robbench.data.base import DataSplit
from robbench.zoo.loop import Checkpointer, resumed_batches

#: trainer name -> function(model, recipe, train split, test split, progress callback, ctx) -> metrics
TRAINERS: dict[str, Callable[..., dict[str, Any]]] = {}


def trainer(name: str) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    def deco(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        TRAINERS[name] = fn
        return fn

    return deco


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 512) -> float:
    model.eval()
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / max(1, x.shape[0])


@trainer("classifier")
def train_classifier(
    model: nn.Module,
    recipe: Any,
    train: DataSplit,
    test: DataSplit,
    progress: Callable[[int, float], None],
    zoo_dir: Any = None,
    checkpoint_every: int | None = None,
    checkpointer: Checkpointer | None = None,
    **_: Any,
) -> dict[str, Any]:
    """Cross-entropy training with Adam and a cosine learning-rate decay (resumable)."""
    cfg = recipe.train
    steps, bs, lr = int(cfg.get("steps", 1000)), int(cfg.get("batch_size", 64)), float(cfg.get("lr", 1e-3))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    ckpt = checkpointer or Checkpointer(recipe, zoo_dir, steps, checkpoint_every)
    start = ckpt.restore(model, opt, sched=sched)
    model.train()
    for step, idx in resumed_batches(len(train), bs, steps, recipe.seed, start):
        loss = F.cross_entropy(model(train.x[idx]), train.y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        sched.step()
        progress(step + 1, loss.item())
        ckpt.save(step + 1, model, opt, sched=sched)
    model.eval()
    return {"test_accuracy": accuracy(model, test.x, test.y), "train_accuracy": accuracy(model, train.x, train.y)}
