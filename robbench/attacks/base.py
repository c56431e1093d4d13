"""The attack interface."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from robbench.attacks.target import Target
from robbench.core.components import Component, Params
from robbench.core.seeding import SampleRNG
from robbench.core.threat import ThreatModel


class Attack(Component):
    """Base class of every attack (entry-point group ``robbench.attacks``).

    ``run`` returns adversarial images; the runner (never the attack) checks that they lie in the
    threat ball and in [0, 1], and judges them with the real defense. An attack may leave a
    per-sample loss trace (steps, B) in ``last_trace`` for the loss-curve checks and plots.
    """

    #: norms this attack supports
    norms: ClassVar[frozenset[str]] = frozenset({"linf", "l2", "l1"})
    #: True for attacks that do not perturb (``clean``): one cell per defense, no threat
    threat_free: ClassVar[bool] = False
    #: False for gradient-free attacks (the gradient mode is then irrelevant)
    uses_gradients: ClassVar[bool] = True
    #: False for attacks that do not take their gradients from ``Target.loss_grad`` (third-party
    #: libraries on ``Target.as_module()``): the suite's ``eot:`` cannot apply to them
    supports_eot: ClassVar[bool] = True

    def __init__(self, params: Params) -> None:
        self.params = params
        self.last_trace: Tensor | None = None
        #: per-sample (forward passes, backward passes, model evaluations) of the last ``run``, each
        #: (B,); ``None`` means the target's batch counters apply to every sample
        self.last_evals: tuple[Tensor, Tensor, Tensor] | None = None

    def run(self, target: Target, x: Tensor, y: Tensor, threat: ThreatModel | None, *, rng: SampleRNG) -> Tensor:
        raise NotImplementedError
