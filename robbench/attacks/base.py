"""The attack interface."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from robbench.attacks.target import Target
from robbench.core.components import Component, Params, ParamsModel
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
    #: class flags of :class:`~robbench.defenses.base.Defense` that must be True on every defense the
    #: attack runs on (e.g. ``records_trajectory``), checked at validation
    defense_needs: ClassVar[tuple[str, ...]] = ()
    #: the gradient modes the attack can run on (checked at validation)
    gradient_modes: ClassVar[frozenset[str]] = frozenset({"full", "bpda", "classifier", "custom"})

    @classmethod
    def effort(cls, params: ParamsModel) -> tuple[str, int] | None:
        """The strength of one run with ``params``: (``"steps"``, gradient steps per restart) or
        (``"queries"``, queries); None when unknown. An attack through the defense below the floors of
        :mod:`robbench.run.strength` is labelled ``adaptive (weak)``."""
        return None

    @classmethod
    def stops_early(cls, params: ParamsModel) -> str | None:
        """What of this attack keeps a library's stopping rule (its first success on one forward decides
        what is returned), or None. Such an attack is refused where its forward is not the judge's
        (randomised, gray-box, transfer, custom targets) unless ``overrides: [library-early-stop]``."""
        return None

    @classmethod
    def own_eot(cls, params: ParamsModel) -> int:
        """EoT samples the attack takes itself (a library's ``eot_iter``), besides the suite's ``eot:``."""
        return 1

    def __init__(self, params: Params) -> None:
        self.params = params
        self.last_trace: Tensor | None = None
        #: per-sample (forward passes, backward passes, model evaluations) of the last ``run``, each
        #: (B,); ``None`` means the target's batch counters apply to every sample
        self.last_evals: tuple[Tensor, Tensor, Tensor] | None = None

    def run(self, target: Target, x: Tensor, y: Tensor, threat: ThreatModel | None, *, rng: SampleRNG) -> Tensor:
        raise NotImplementedError
