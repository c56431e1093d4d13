"""Validation of a parsed suite before any compute: names, parameters, data, budgets, models.

:func:`check_suite` resolves every component name through its registry, validates each component's
own parameters (and their cross-field checks against the data set), checks that the data is there
and the samples exist, that budgets are meaningful, that each attack's norms, gradient mode and EoT
fit its defenses, that every reported number lands in a cell, and that every model file exists and
fits its architecture. It raises one :class:`~robbench.errors.RobbenchError` naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from robbench.core import registry
from robbench.core.budget import NORMS, format_eps, max_eps
from robbench.core.components import BuildContext, parse_params
from robbench.data.base import Dataset, load_dataset
from robbench.errors import RobbenchError, SuiteError
from robbench.run.honesty import check_honest
from robbench.suite.load import read_suite
from robbench.suite.model import AttackSpec, Suite
from robbench.suite.reported import check_reported

if TYPE_CHECKING:
    from robbench.run.plan import Plan

T = TypeVar("T")


def at_field(fn: Callable[[], T], where: str) -> T:
    """Call ``fn``; a :class:`RobbenchError` it raises is re-raised (same class) with ``where:`` in front."""
    try:
        return fn()
    except RobbenchError as exc:
        raise type(exc)(f"{where}: {exc.message}", hint=exc.hint) from None


def _component(reg: registry.Registry[Any], name: str, where: str) -> Any:
    try:
        return reg.get(name)
    except RobbenchError as exc:
        raise SuiteError(f"{where}: {exc.message}", hint=exc.hint) from None


def check_data(suite: Suite, data_dir: str | None) -> Dataset:
    """The data set exists, its split is available here, and the selected samples exist."""
    d = suite.data
    ds = at_field(lambda: load_dataset(d.dataset, data_dir or d.data_dir), "suite.data.dataset")
    at_field(lambda: ds.check_split(d.split), "suite.data.split")
    at_field(lambda: ds.check_available(d.split), "suite.data")
    n = ds.size(d.split)
    where = f"{ds.name}/{d.split}"
    if d.indices is not None:
        bad = [i for i in d.indices if i >= n]
        if bad:
            raise SuiteError(
                f"suite.data.indices: {bad[:5]} out of range; {where} has {n} samples", hint=f"use indices below {n}"
            )
    elif d.offset >= n:
        raise SuiteError(
            f"suite.data.offset: {d.offset} is past the end of {where} ({n} samples)", hint=f"use an offset below {n}"
        )
    elif (d.n_samples or 0) + d.offset > n:
        raise SuiteError(
            f"suite.data.n_samples: {d.n_samples} (offset {d.offset}) exceeds the {n} samples of {where}",
            hint=f"use n_samples <= {n - d.offset}",
        )
    return ds


def check_threats(suite: Suite, ds: Dataset) -> None:
    """Every budget is below the radius that already contains the whole pixel box."""
    for i, t in enumerate(suite.threats):
        top = max_eps(t.norm, ds.dim)
        if t.eps >= top:
            raise SuiteError(
                f"suite.threats.{i}.eps: {t.norm} eps {format_eps(t.eps)} is not below {top:g}, the "
                f"radius that already contains all of [0,1]^{ds.dim}",
                hint="pixels are in [0, 1]: write e.g. 8/255 for Linf, not 8",
            )


def check_defenses(suite: Suite, ctx: BuildContext) -> dict[str, Any]:
    """Each defense resolves and its parameters validate; returns display id -> class."""
    classes = {}
    for i, d in enumerate(suite.defenses):
        cls = _component(registry.defenses, d.name, f"suite.defenses.{i}.name")
        params = parse_params(cls.Params, d.params, f"suite.defenses.{i}.params")
        cls.check_params(params, ctx)
        classes[d.display] = cls
        if suite.classifier is None and d.classifier is None and not getattr(cls, "own_classifier", False):
            raise SuiteError(
                f"suite.classifier: defense {d.display!r} needs a classifier and the suite names none",
                hint="add `classifier:` (a zoo name or {arch, checkpoint}) to the suite or to the defense",
            )
        if d.classifier is not None and getattr(cls, "own_classifier", False):
            raise SuiteError(
                f"suite.defenses.{i}.classifier: defense {d.display!r} classifies on its own and takes no classifier",
                hint=f"remove `classifier:` from defense {d.display!r}",
            )
    return classes


def check_attack_norms(suite: Suite, a: AttackSpec, cls: Any, where: str) -> None:
    """The attack supports the norms it runs at."""
    for n in a.norms or []:
        if n not in NORMS:
            raise SuiteError(f"{where}.norms: unknown norm {n!r}", hint=f"use {list(NORMS)}")
    if getattr(cls, "threat_free", False):
        return
    wanted = set(a.norms or [t.norm for t in suite.threats])
    unsupported = sorted(wanted & {t.norm for t in suite.threats} - set(cls.norms))
    if unsupported and a.norms is not None:
        raise SuiteError(
            f"{where}: attack {a.name!r} does not support norm(s) {unsupported}",
            hint=f"it supports {sorted(cls.norms)}: fix `norms:`",
        )
    if unsupported:
        raise SuiteError(
            f"{where}: attack {a.name!r} does not support norm(s) {unsupported} of the suite's threats",
            hint=f"add `norms: {sorted(set(cls.norms) & wanted)}` to the attack",
        )


def check_attack_fits(a: AttackSpec, cls: Any, defenses: dict[str, Any], where: str) -> None:
    """EoT, BPDA and custom gradients fit the attack and every defense it runs on."""
    if a.eot > 1 and not getattr(cls, "supports_eot", True):
        raise SuiteError(
            f"{where}.eot: attack {a.name!r} does not take its gradients from robbench's EoT (it calls "
            f"the defense itself), so eot: {a.eot} cannot apply",
            hint="remove `eot:`; for AutoAttack use version: rand or its eot_iter parameter",
        )
    if a.gradient not in cls.gradient_modes:
        raise SuiteError(
            f"{where}.gradient: attack {a.name!r} runs on gradient modes {sorted(cls.gradient_modes)}, not "
            f"{a.gradient!r}",
            hint=f"set gradient: {sorted(cls.gradient_modes)[0]} on attack {a.id}",
        )
    for did in a.defenses or list(defenses):
        dcls = defenses[did]
        missing = [flag for flag in cls.defense_needs if not getattr(dcls, flag, False)]
        if missing:
            raise SuiteError(
                f"{where}: attack {a.name!r} needs a defense with {', '.join(missing)}, and defense {did!r} "
                "does not declare it",
                hint=f"restrict attack {a.id} with `defenses:` to defenses that do (e.g. diffpure, gdmp, agdm)",
            )
        if a.gradient == "bpda" and not dcls.has_purifier:
            raise SuiteError(
                f"{where}.gradient: BPDA replaces a purifier, and defense {did!r} has none",
                hint=f"restrict the attack with `defenses:` or use gradient: full for {did!r}",
            )
        if a.gradient == "custom" and not hasattr(dcls, "custom_logits"):
            raise SuiteError(
                f"{where}.gradient: defense {did!r} supplies no custom gradient",
                hint="use gradient: full or bpda for it",
            )


def check_attacks(suite: Suite, ctx: BuildContext, defenses: dict[str, Any]) -> dict[str, Any]:
    """Each attack resolves, validates, and fits its norms and defenses; returns attack id -> class."""
    classes = {}
    for i, a in enumerate(suite.attacks):
        where = f"suite.attacks.{i}"
        cls = _component(registry.attacks, a.name, f"{where}.name")
        params = parse_params(cls.Params, a.params, f"{where}.params")
        at_field(partial(cls.check_params, params, ctx), f"{where} ({a.id})")
        check_attack_norms(suite, a, cls, where)
        check_attack_fits(a, cls, defenses, where)
        classes[a.id] = cls
    return classes


def check_models(suite: Suite) -> None:
    """The classifier and surrogates resolve, and their files exist and fit their architectures."""
    from robbench.zoo import check_model_ref

    if suite.classifier is not None:
        check_model_ref(suite.classifier, "suite.classifier")
    for i, d in enumerate(suite.defenses):
        if d.classifier is not None:
            check_model_ref(d.classifier, f"suite.defenses.{i}.classifier")
    for i, a in enumerate(suite.attacks):
        if a.surrogate is not None:
            check_model_ref(a.surrogate, f"suite.attacks.{i}.surrogate")


def check_suite(suite: Suite, *, data_dir: str | None = None, models: bool = True) -> None:
    """Resolve every name, validate every parameter, check data, budgets and models. Computes nothing.
    ``adaptive`` entries are checked as the protocols they expand into (:mod:`robbench.run.adaptive`)."""
    from robbench.run.adaptive import expand_adaptive

    suite = expand_adaptive(suite)
    ds = check_data(suite, data_dir)
    check_threats(suite, ds)
    ctx = BuildContext(dataset=ds, device=torch.device("cpu"), suite_seed=suite.seed)
    defenses = check_defenses(suite, ctx)
    attacks = check_attacks(suite, ctx, defenses)
    check_reported(suite, {aid: bool(getattr(cls, "threat_free", False)) for aid, cls in attacks.items()})
    check_honest(suite, defenses, attacks)
    if models:
        check_models(suite)


def validate_file(path: str | Path, *, data_dir: str | None = None, zoo_dir: str | None = None) -> Plan:
    """Read, check and plan a suite file: the plan ``robbench validate`` describes (cells, samples,
    notes). Computes nothing heavy."""
    from robbench.run.plan import Plan

    suite, text = read_suite(path)
    check_suite(suite, data_dir=data_dir)
    return Plan(suite, suite_text=text, data_dir=data_dir, zoo_dir=zoo_dir)


def load_suite(path: str | Path, *, data_dir: str | None = None) -> Suite:
    """Read, validate and check a suite file. Raises on any problem; computes nothing."""
    suite, _ = read_suite(path)
    check_suite(suite, data_dir=data_dir)
    return suite
