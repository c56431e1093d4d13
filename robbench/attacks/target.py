"""What an attack sees: a defense wrapped with a gradient mode, a randomness mode and EoT.

Gradient modes (``AttackSpec.gradient``):

- ``full``: exact backpropagation through purifier and classifier (the defense is asked to
  checkpoint its iterations so memory stays bounded);
- ``bpda``: forward through the real purifier, the identity in its place backward (straight-through,
  Athalye et al. 2018, Sec. 4.1.1), exact through the classifier;
- ``classifier``: gray-box, the classifier alone (the defense only judges);
- ``custom``: the defense's own ``custom_logits(x, rng)``.

Randomness (``AttackSpec.randomness``): ``det`` re-seeds the defense's per-sample streams to the
same seeds at every forward (attacker-known randomness, the same draws the judgement uses);
``fresh`` continues the streams, so each forward draws anew. EoT(k) averages the loss gradient
over k draws by replicating the batch k times (chunked to ``eot_chunk`` samples), or by a Python
loop when ``eot_batched`` is off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robbench.core.seeding import SampleRNG, derive_seed
from robbench.defenses.base import Defense

GradientMode = Literal["full", "bpda", "classifier", "custom"]


LossFn = Callable[[Tensor, Tensor], Tensor]


def ce_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Per-sample cross-entropy."""
    return F.cross_entropy(logits, y, reduction="none")


def margin_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Per-sample CW margin: best other logit minus the true logit (positive = misclassified)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return other.amax(dim=1) - true


LOSSES: dict[str, LossFn] = {"ce": ce_loss, "margin": margin_loss}


class _StraightThrough(torch.autograd.Function):
    """Forward: the purified image. Backward: the identity (BPDA)."""

    @staticmethod
    def forward(ctx, x: Tensor, purified: Tensor) -> Tensor:  # type: ignore[no-untyped-def]
        return purified.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[no-untyped-def]
        return grad, None


class Target:
    """A defense as an attack sees it. Counts forward and backward passes per sample."""

    def __init__(
        self,
        defense: Defense,
        *,
        gradient: GradientMode = "full",
        randomness: Literal["det", "fresh"] = "fresh",
        rng: SampleRNG | None = None,
        eot: int = 1,
        eot_chunk: int = 4096,
        eot_batched: bool = True,
        surrogate: nn.Module | None = None,
        checkpoint: bool = True,
        judge_draws: int = 1,
    ) -> None:
        self.defense = defense
        #: the draws the judge scores a stochastic defense on (an attack that picks among candidates
        #: averages its margin over this many fresh forwards, never one)
        self.judge_draws = max(1, judge_draws)
        self.gradient = gradient
        self.randomness = randomness
        self.stochastic = bool(defense.stochastic) and rng is not None
        self.rng = rng
        self.eot = (
            eot
            if self.stochastic
            and randomness == "fresh"
            and gradient in ("full", "bpda", "custom")
            and surrogate is None
            else 1
        )
        self.eot_chunk = max(1, eot_chunk)
        self.eot_batched = eot_batched
        self.surrogate = surrogate
        self._eot_rng = rng.repeat(self.eot, tag="eot") if (rng is not None and self.eot > 1) else None
        self.forwards = 0  # per-sample forward passes through the attacked model
        self.backwards = 0  # per-sample backward passes
        self.checkpoint = checkpoint
        if gradient == "full":
            defense.grad_checkpointing(checkpoint)

    def select(self, index: list[int]) -> Target:
        """The same target restricted to some samples of the batch (their own streams, fresh counters).

        Third-party attacks run per sample through this, so each sample keeps its identity (its
        random streams, its ``det`` seeds and its cost counters) whatever subsets the library forms.
        """
        sub = Target.__new__(Target)
        sub.__dict__.update(self.__dict__)
        sub.rng = self.rng.select(index) if self.rng is not None else None
        if self._eot_rng is not None:
            b = len(self.rng) if self.rng is not None else 0
            sub._eot_rng = self._eot_rng.select([j * b + i for j in range(self.eot) for i in index])
        sub.forwards = 0
        sub.backwards = 0
        return sub

    @property
    def judged_forward(self) -> bool:
        """True when the attack's forward is the judge's forward: the real defense (full gradient or BPDA,
        whose forward runs the real purifier), deterministic or with the judge's det seeds. Elsewhere
        (gray-box, transfer, custom gradients, fresh draws) a success the attack sees may not be one the
        judge sees, so no attack may stop early or keep its first "success"."""
        return self.gradient in ("full", "bpda") and self.surrogate is None and self.deterministic

    @property
    def margin_draws(self) -> int:
        """Forwards to average a candidate's margin over: the judge's draws on a randomised target, else 1."""
        return 1 if self.deterministic else self.judge_draws

    @property
    def deterministic(self) -> bool:
        """True when every forward of the same input gives the same logits."""
        return (
            (not self.stochastic)
            or self.randomness == "det"
            or self.gradient == "classifier"
            or self.surrogate is not None
        )

    def _rng_for(self, rng: SampleRNG | None) -> SampleRNG | None:
        if rng is None or not self.defense.stochastic:
            return None
        if self.randomness == "det":
            rng.reset()
        return rng

    def _logits(self, x: Tensor, rng: SampleRNG | None) -> Tensor:
        if self.surrogate is not None:
            out: Tensor = self.surrogate(x)
            return out
        if self.gradient == "classifier":
            return self.defense.classify(x)
        rng = self._rng_for(rng)
        if self.gradient == "full":
            full: Tensor = self.defense(x, rng)
            return full
        if self.gradient == "bpda":
            with torch.no_grad():
                purified = self.defense.purify(x.detach(), rng=rng)
            return self.defense.classify(_StraightThrough.apply(x, purified))  # type: ignore[no-untyped-call]
        if self.gradient == "custom":
            custom: Tensor = getattr(self.defense, "custom_logits")(x, rng)  # noqa: B009 - optional method
            return custom
        raise ValueError(f"unknown gradient mode {self.gradient!r}")

    def logits(self, x: Tensor) -> Tensor:
        """Logits of one forward (one draw), with the graph the gradient mode prescribes."""
        self.forwards += 1
        return self._logits(x, self.rng)

    @property
    def can_graft(self) -> bool:
        """True when the attack sees the real purifier with exact gradients, then the classifier: the
        purification and the classification can be differentiated apart (DiffHammer's gradient grafting)."""
        d = self.defense
        return self.gradient == "full" and self.surrogate is None and d.has_purifier and not d.own_classifier

    def purify(self, x: Tensor) -> Tensor:
        """One draw of the real purifier (with its graph when ``x`` requires grad), counted as a forward;
        classify it with ``defense.classify``. Only where :attr:`can_graft`."""
        assert self.can_graft
        self.forwards += 1
        return self.defense.purify(x, rng=self._rng_for(self.rng))

    def loss_grad(self, x: Tensor, y: Tensor, loss: str | LossFn = "ce") -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample loss (B,), its gradient w.r.t. ``x`` (averaged over EoT draws), and logits.

        The logits are those of the first draw (used by attacks to track success).
        """
        loss_fn = LOSSES[loss] if isinstance(loss, str) else loss
        b = x.shape[0]
        xg = x.detach().clone().requires_grad_(True)
        k = self.eot
        if k == 1:  # the common case, without the EoT bookkeeping (and no gradient into parameters)
            logits = self._logits(xg, self.rng)
            losses = loss_fn(logits, y)
            (grad,) = torch.autograd.grad(losses.sum(), xg)
            self.forwards += 1
            self.backwards += 1
            return losses.detach(), grad, logits.detach()
        total = torch.zeros(b, device=x.device)
        first_logits: Tensor | None = None
        if self.eot_batched:
            assert self._eot_rng is not None
            per_chunk = max(1, self.eot_chunk // b)
            for start in range(0, k, per_chunk):
                kc = min(per_chunk, k - start)
                idx = [j * b + i for j in range(start, start + kc) for i in range(b)]
                xr = xg.repeat(kc, 1, 1, 1)
                logits = self._logits(xr, self._eot_rng.select(idx))
                losses = loss_fn(logits, y.repeat(kc))
                losses.sum().backward()  # type: ignore[no-untyped-call]
                total += losses.detach().view(kc, b).sum(0)
                if first_logits is None:
                    first_logits = logits.detach()[:b]
            total /= k
        else:
            assert self._eot_rng is not None
            for j in range(k):
                logits = self._logits(xg, self._eot_rng.select(range(j * b, (j + 1) * b)))
                losses = loss_fn(logits, y)
                losses.sum().backward()  # type: ignore[no-untyped-call]
                total += losses.detach()
                if first_logits is None:
                    first_logits = logits.detach()
            total /= k
        assert xg.grad is not None and first_logits is not None
        self.forwards += k
        self.backwards += k
        return total, xg.grad.detach() / k, first_logits

    def as_module(self) -> nn.Module:
        """An ``nn.Module`` view (logits of one draw per call) for third-party attack libraries."""
        return _TargetModule(self)


class _TargetModule(nn.Module):
    """``nn.Module`` view of a :class:`Target`: one draw per call, forward and backward passes counted.

    Randomness of a stochastic defense: when a call passes as many images as the target has samples,
    they are taken to be those samples in order and use their own streams (``det``: rewound at every
    call, i.e. the judge's draw; ``fresh``: continued, a new draw per call). A call with another
    batch size (a library attacking a subset) cannot know which samples it holds and draws from
    batch-position streams derived from the target's seeds and the call count (``det``: the same for
    every call of that size). Run third-party attacks per sample (``Target.select``) to keep the exact
    semantics. The defense is a submodule, so ``next(module.parameters())`` gives its device.
    """

    def __init__(self, target: Target) -> None:
        super().__init__()
        self.target = target
        self.defense = target.defense
        self._calls = 0

    def forward(self, x: Tensor) -> Tensor:
        t = self.target
        rng = None
        if t.rng is not None and t.defense.stochastic and t.gradient != "classifier" and t.surrogate is None:
            if x.shape[0] == len(t.rng):
                rng = t.rng
            else:
                tag = ("as_module", x.shape[0]) if t.randomness == "det" else ("as_module", self._calls)
                rng = SampleRNG([derive_seed(*t.rng.seeds, *tag, i) for i in range(x.shape[0])], device=x.device)
        self._calls += 1
        t.forwards += 1
        logits = t._logits(x, rng)
        if logits.requires_grad:
            logits.register_hook(self._count_backward)  # type: ignore[no-untyped-call]
        return logits

    def _count_backward(self, grad: Tensor) -> None:
        self.target.backwards += 1
