"""What every zoo trainer shares: per-step generators, EMA weights, and resumable partial checkpoints.

Resuming is exact: a partial checkpoint holds the step, the model, the optimiser (and scheduler)
state and the EMA weights; all randomness of step ``i`` comes from a generator derived from
``(seed, purpose, i)`` and the data order from :func:`batches` replayed to step
``i``. So a run killed after any saved step and restarted ends with bit-identical weights.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from robbench.core.io import atomic_write_bytes
from robbench.core.seeding import derive_seed, generator
from robbench.errors import CheckpointError


def step_generator(seed: int, purpose: str, step: int) -> torch.Generator:
    """The generator of one training step's random draws (noise, levels, timesteps, dropout)."""
    return generator(derive_seed(seed, purpose, step))


def batches(n: int, batch_size: int, steps: int, seed: int) -> Iterator[Tensor]:
    """Index batches for ``steps`` steps, reshuffled every epoch from a seeded generator."""
    g = generator(derive_seed(seed, "batches"))
    perm = torch.randperm(n, generator=g)
    pos = 0
    for _ in range(steps):
        if pos + batch_size > n:
            perm = torch.randperm(n, generator=g)
            pos = 0
        yield perm[pos : pos + batch_size]
        pos += batch_size


def resumed_batches(n: int, batch_size: int, steps: int, seed: int, start: int) -> Iterator[tuple[int, Tensor]]:
    """``(step, index batch)`` for steps ``start..steps-1``: the data order of an uninterrupted run."""
    for step, idx in enumerate(batches(n, batch_size, steps, seed)):
        if step >= start:
            yield step, idx


class EMA:
    """Exponential moving average of a model's floating-point parameters and buffers.

    The decay warms up as ``min(decay, (1 + k) / (10 + k))`` after ``k`` updates, so early
    averages are not dominated by the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.updates = 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.state[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.state[k].copy_(v)
        self.updates += 1

    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict(self.state)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "state": self.state}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.decay = float(sd["decay"])
        self.updates = int(sd["updates"])
        self.state = {k: v.clone() for k, v in sd["state"].items()}


class Checkpointer:
    """Periodic partial checkpoints ``KEY.partial-tTHREADS.pt`` in the zoo folder, written atomically.

    ``restore`` loads the latest one (if any) into the given objects and returns the step to
    continue from; ``save`` writes one every ``every`` steps; ``finish`` removes it once the final
    checkpoint is stored.
    """

    def __init__(self, recipe: Any, zoo_dir: str | Path | None, steps: int, every: int | None = None) -> None:
        from robbench.zoo.store import ZooStore

        self.recipe_hash = str(recipe.hash)
        self.root = ZooStore(zoo_dir).root
        self.key = str(recipe.key)
        # CPU results depend on the thread count, so runs with different counts never mix their states
        self.path = self.root / f"{self.key}.partial-t{torch.get_num_threads()}.pt"
        self.every = int(every) if every else max(1, steps // 20)
        self.steps = steps
        #: the step a run continued from (0: trained from the start)
        self.resumed_from = 0

    def restore(
        self, model: nn.Module, opt: torch.optim.Optimizer, *, sched: Any = None, ema: EMA | None = None
    ) -> int:
        if not self.path.is_file():
            return 0
        try:
            blob = torch.load(self.path, map_location="cpu", weights_only=True)
            if blob.get("recipe_hash") != self.recipe_hash:
                raise ValueError(f"recipe hash {blob.get('recipe_hash')} != {self.recipe_hash}")
            model.load_state_dict(blob["model"])
            opt.load_state_dict(blob["opt"])
            if sched is not None:
                sched.load_state_dict(blob["sched"])
            if ema is not None:
                ema.load_state_dict(blob["ema"])
            self.resumed_from = int(blob["step"])
            return self.resumed_from
        except Exception as exc:
            raise CheckpointError(
                f"partial checkpoint {self.path} cannot be resumed: {str(exc)[:200]}",
                hint=f"delete {self.path} to train from the start",
            ) from None

    def save(
        self, step: int, model: nn.Module, opt: torch.optim.Optimizer, *, sched: Any = None, ema: EMA | None = None
    ) -> None:
        """Write the state after ``step`` completed steps, when ``step`` is a multiple of ``every``."""
        if step % self.every or step >= self.steps:
            return
        blob = {
            "step": step,
            "recipe_hash": self.recipe_hash,
            "model": model.state_dict(),
            "opt": opt.state_dict(),
            "sched": sched.state_dict() if sched is not None else {},
            "ema": ema.state_dict() if ema is not None else {},
        }
        buf = io.BytesIO()
        torch.save(blob, buf)
        atomic_write_bytes(self.path, buf.getvalue())

    def finish(self) -> None:
        """Remove this recipe's partial checkpoints once its final checkpoint is stored."""
        for p in self.root.glob(f"{self.key}.partial*.pt"):
            p.unlink(missing_ok=True)
