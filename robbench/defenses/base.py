"""The defense interface.

A defense maps pixels in [0, 1] to logits: ``classify(purify(x, rng))``. ``purify`` is
pixels -> pixels and takes *all* of its randomness from the :class:`~robbench.core.seeding.SampleRNG`
it is given (``None`` only for deterministic defenses). The runner and the attack targets wrap a
defense for the different gradient modes (full, BPDA, gray-box, EoT) so no defense needs to know
about attacks.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from robbench.core.components import BuildContext, Component, Params
from robbench.core.seeding import SampleRNG
from robbench.errors import SuiteError


class Defense(Component, nn.Module):
    """Base class of every defense (entry-point group ``robbench.defenses``)."""

    #: True when ``purify`` draws random numbers (then it is scored over several draws)
    stochastic: ClassVar[bool] = False
    #: False for ``none``-like defenses: BPDA needs a purifier to replace
    has_purifier: ClassVar[bool] = True
    #: True when the defense classifies on its own (e.g. RDC) and ignores the suite's classifier
    own_classifier: ClassVar[bool] = False
    #: False when the exact gradient through ``purify`` carries no signal (rounding, hard thresholds):
    #: the ``adaptive`` attack then uses BPDA and queries instead of the full gradient
    differentiable: ClassVar[bool] = True
    #: True for purifiers that iterate (score ascent, reverse diffusion): exact gradients through them can
    #: vanish or explode, so ``adaptive`` adds BPDA beside the full gradient
    iterative: ClassVar[bool] = False
    #: True when ``custom_logits(x, rng)`` is a surrogate process (a cheaper purifier whose exact gradient
    #: stands in for the real one's; Lee & Kim, ICCV 2023): ``adaptive`` then attacks through it too
    surrogate_process: ClassVar[bool] = False
    #: True when ``purify`` appends its intermediate states ``(abar_t, x_t)`` (with their graph; ``x_t`` in
    #: the diffusion space [-1, 1], ``abar_t`` its signal level) to ``self.trajectory`` whenever that is a
    #: list (DiffAttack's deviated-reconstruction loss)
    records_trajectory: ClassVar[bool] = False

    def __init__(self, params: Params, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        if ctx.classifier is None and not self.own_classifier:
            raise SuiteError(f"defense {type(self).__name__} needs a classifier: set `classifier:` in the suite")
        self.classifier = ctx.classifier
        #: model evaluations (generative or classifier) counted by the runner for cost columns
        self.evals = 0
        #: where ``purify`` records its intermediate states, when the defense does and this is a list
        self.trajectory: list[tuple[float, Tensor]] | None = None

    def purify(self, x: Tensor, *, rng: SampleRNG | None = None) -> Tensor:
        """Pixels in [0, 1] -> pixels in [0, 1]; the identity by default."""
        return x

    def classify(self, x: Tensor) -> Tensor:
        """Logits of the (purified) pixels."""
        assert self.classifier is not None
        self.evals += x.shape[0]
        out: Tensor = self.classifier(x)
        return out

    def forward(self, x: Tensor, rng: SampleRNG | None = None) -> Tensor:
        return self.classify(self.purify(x, rng=rng))

    def grad_checkpointing(self, enabled: bool) -> None:
        """Ask an iterative purifier to checkpoint its iterations in full-gradient mode (optional)."""
        self._checkpoint = enabled

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")
