"""The YAML suite: pydantic models (unknown keys rejected) and the loader that checks everything.

``load_suite`` parses YAML with the safe loader, validates the document, resolves every component
name in its registry, validates each component's own parameters, and checks data availability and
budgets against the data set, all before any compute. Errors name the YAML field and, where the
YAML parser knows it, the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from robbench.core.budget import NORMS, format_eps, max_eps
from robbench.errors import RobbenchError, SuiteError
from robbench.suite.load import read_suite
from robbench.suite.model import Suite

if TYPE_CHECKING:  # torch-free until a suite's structure is valid (fast `robbench validate` errors)
    pass


def check_suite(suite: Suite, *, data_dir: str | None = None, check_models: bool = True) -> None:
    """Resolve every name, validate every component's parameters, check data and budgets.

    Raises :class:`SuiteError` / :class:`RobbenchError` with the field named. Computes nothing.
    """
    from robbench.core import registry
    from robbench.core.components import parse_params
    from robbench.data.base import load_dataset

    ds = _field(lambda: load_dataset(suite.data.dataset, data_dir or suite.data.data_dir), "suite.data.dataset")
    _field(lambda: ds.check_split(suite.data.split), "suite.data.split")
    _field(lambda: ds.check_available(suite.data.split), "suite.data")
    n_avail = ds.size(suite.data.split)
    if suite.data.indices is None and suite.data.offset >= n_avail:
        raise SuiteError(
            f"suite.data.offset: {suite.data.offset} is past the end of {ds.name}/{suite.data.split} "
            f"({n_avail} samples)",
            hint=f"use an offset below {n_avail}",
        )
    if suite.data.indices is not None:
        bad = [i for i in suite.data.indices if i >= n_avail]
        if bad:
            raise SuiteError(
                f"suite.data.indices: {bad[:5]} out of range; {ds.name}/{suite.data.split} has {n_avail} samples"
            )
    elif (suite.data.n_samples or 0) + suite.data.offset > n_avail:
        raise SuiteError(
            f"suite.data.n_samples: {suite.data.n_samples} (offset {suite.data.offset}) exceeds the "
            f"{n_avail} samples of {ds.name}/{suite.data.split}",
            hint=f"use n_samples <= {n_avail - suite.data.offset}",
        )
    for i, t in enumerate(suite.threats):
        top = max_eps(t.norm, ds.dim)
        if t.eps >= top:
            raise SuiteError(
                f"suite.threats.{i}.eps: {t.norm} eps {format_eps(t.eps)} is not below {top:g}, the radius "
                f"that already contains all of [0,1]^{ds.dim}",
                hint="pixels are in [0, 1]: write e.g. 8/255 for Linf, not 8",
            )
    from robbench.core.components import BuildContext

    ctx = BuildContext(dataset=ds, device=__import__("torch").device("cpu"), suite_seed=suite.seed)
    defense_classes = {}
    for i, d in enumerate(suite.defenses):
        cls = _get(registry.defenses, d.name, f"suite.defenses.{i}.name")
        params = parse_params(cls.Params, d.params, f"suite.defenses.{i}.params")
        cls.check_params(params, ctx)
        defense_classes[d.display] = cls
        if suite.classifier is None and not getattr(cls, "own_classifier", False):
            raise SuiteError(f"suite.classifier: defense {d.display!r} needs a classifier and the suite names none")
    for i, a in enumerate(suite.attacks):
        cls = _get(registry.attacks, a.name, f"suite.attacks.{i}.name")
        params = parse_params(cls.Params, a.params, f"suite.attacks.{i}.params")
        _field(lambda c=cls, p=params: c.check_params(p, ctx), f"suite.attacks.{i} ({a.id})")
        if a.eot > 1 and not getattr(cls, "supports_eot", True):
            raise SuiteError(
                f"suite.attacks.{i}.eot: attack {a.name!r} does not take its gradients from robbench's "
                f"EoT (it calls the defense itself), so eot: {a.eot} cannot apply",
                hint="remove `eot:`; for AutoAttack use version: rand or its eot_iter parameter",
            )
        for n in a.norms or []:
            if n not in NORMS:
                raise SuiteError(f"suite.attacks.{i}.norms: unknown norm {n!r}; use {list(NORMS)}")
        wanted = set(a.norms or [t.norm for t in suite.threats])
        if not getattr(cls, "threat_free", False):
            unsupported = sorted(wanted & {t.norm for t in suite.threats} - set(cls.norms))
            if unsupported and a.norms is not None:
                raise SuiteError(
                    f"suite.attacks.{i}: attack {a.name!r} does not support norm(s) {unsupported}; it supports {sorted(cls.norms)}"
                )
            if unsupported and a.norms is None:
                raise SuiteError(
                    f"suite.attacks.{i}: attack {a.name!r} does not support norm(s) {unsupported} of the suite's threats",
                    hint=f"add `norms: {sorted(set(cls.norms) & wanted)}` to the attack",
                )
        for did in a.defenses or list(defense_classes):
            dcls = defense_classes[did]
            if a.gradient == "bpda" and not dcls.has_purifier:
                raise SuiteError(
                    f"suite.attacks.{i}.gradient: BPDA replaces a purifier, and defense {did!r} has none",
                    hint=f"restrict the attack with `defenses:` or use gradient: full for {did!r}",
                )
            if a.gradient == "custom" and not hasattr(dcls, "custom_logits"):
                raise SuiteError(f"suite.attacks.{i}.gradient: defense {did!r} supplies no custom gradient")
    from robbench.suite.reported import check_reported

    check_reported(
        suite, {a.id: bool(getattr(registry.attacks.get(a.name), "threat_free", False)) for a in suite.attacks}
    )
    if check_models:
        from robbench.zoo import check_model_ref

        if suite.classifier is not None:
            check_model_ref(suite.classifier, "suite.classifier")
        for i, a in enumerate(suite.attacks):
            if a.surrogate is not None:
                check_model_ref(a.surrogate, f"suite.attacks.{i}.surrogate")


def _field(fn: Any, where: str) -> Any:
    """Call ``fn``; a :class:`RobbenchError` it raises is re-raised (same class) with ``where:`` in front."""
    try:
        return fn()
    except RobbenchError as exc:
        raise type(exc)(f"{where}: {exc.message}", hint=exc.hint) from None


def _get(reg: Any, name: str, where: str) -> Any:
    try:
        return reg.get(name)
    except RobbenchError as exc:
        raise SuiteError(f"{where}: {exc.message}", hint=exc.hint) from None


def load_suite(path: str | Path, *, data_dir: str | None = None) -> Suite:
    """Read, validate and check a suite file. Raises on any problem; computes nothing."""
    suite, _ = read_suite(path)
    check_suite(suite, data_dir=data_dir)
    return suite
