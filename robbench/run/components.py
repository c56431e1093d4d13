"""The built components of a run, made once per process: the data subset, the build context with the
classifier, the defenses (evaluation mode, frozen, with the run's speed options applied), surrogates
and attacks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from robbench.attacks.base import Attack
from robbench.core import registry
from robbench.core.components import BuildContext, parse_params
from robbench.data.base import DataSplit
from robbench.defenses.base import Defense
from robbench.suite.model import AttackSpec, DefenseSpec

if TYPE_CHECKING:
    from robbench.run.plan import Plan


class RunComponents:
    """Lazily built, cached components of one plan on one device."""

    def __init__(self, plan: Plan, device: torch.device, accel: dict[str, bool] | None = None) -> None:
        self.plan = plan
        self.device = device
        #: run options applied to the models (robbench.run.accel): {"compile": bool, "channels_last": bool}
        self.accel = dict(accel or {})
        self._data: DataSplit | None = None
        self._ctx: BuildContext | None = None
        self._defenses: dict[str, Defense] = {}
        self._surrogates: dict[str, torch.nn.Module] = {}
        self._prepared: set[int] = set()  # defenses' own classifiers already given the run's speed options

    @property
    def data(self) -> DataSplit:
        """The suite's samples (positions ``plan.sample_positions`` of its split)."""
        if self._data is None:
            full = self.plan.dataset.load(self.plan.suite.data.split)
            self._data = full.subset(self.plan.sample_positions)
        return self._data

    @property
    def ctx(self) -> BuildContext:
        """The build context: data set, device, suite seed, the suite's classifier (loaded on first use)."""
        if self._ctx is None:
            ctx = BuildContext(
                dataset=self.plan.dataset,
                device=self.device,
                suite_seed=self.plan.suite.seed,
                zoo_dir=self.plan.zoo_dir,
            )
            if self.plan.suite.classifier is not None:
                ctx.classifier = ctx.model(self.plan.suite.classifier)
                if self.accel:
                    from robbench.run.accel import prepare_model

                    prepare_model(ctx.classifier, **self.accel)
            self._ctx = ctx
        return self._ctx

    def ctx_for(self, spec: DefenseSpec) -> BuildContext:
        """The build context of one defense: the suite's, with the defense's own classifier if it names one."""
        if spec.classifier is None:
            return self.ctx
        from dataclasses import replace

        classifier = self.ctx.model(spec.classifier)
        if self.accel and id(classifier) not in self._prepared:
            from robbench.run.accel import prepare_model

            prepare_model(classifier, **self.accel)
            self._prepared.add(id(classifier))
        return replace(self.ctx, classifier=classifier)

    def defense(self, spec: DefenseSpec) -> Defense:
        """The defense of ``spec``, built once: evaluation mode, frozen parameters, the run's options."""
        if spec.display not in self._defenses:
            from robbench.run.accel import prepare_defense

            cls = registry.defenses.get(spec.name)
            ctx = self.ctx_for(spec)
            d: Defense = cls(parse_params(cls.Params, spec.params, f"defense {spec.display}"), ctx)
            d.to(self.device).eval()
            for p in d.parameters():
                p.requires_grad_(False)
            prepare_defense(
                d,
                classifier=ctx.classifier,
                precision=self.plan.suite.evaluation.generative_precision,
                **self.accel,
            )
            self._defenses[spec.display] = d
        return self._defenses[spec.display]

    def surrogate(self, spec: AttackSpec) -> torch.nn.Module | None:
        """The transfer attack's surrogate model (None when the attack has none)."""
        if spec.surrogate is None:
            return None
        key = repr(spec.surrogate)
        if key not in self._surrogates:
            self._surrogates[key] = self.ctx.model(spec.surrogate)
        return self._surrogates[key]

    @staticmethod
    def attack(spec: AttackSpec) -> Attack:
        """A fresh attack instance of ``spec`` (attacks keep per-run state such as the last loss trace)."""
        cls = registry.attacks.get(spec.name)
        attack: Attack = cls(parse_params(cls.Params, spec.params, f"attack {spec.id}"))
        return attack
