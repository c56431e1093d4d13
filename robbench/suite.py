"""The YAML suite: pydantic models (unknown keys rejected) and the loader that checks everything.

``load_suite`` parses YAML with the safe loader, validates the document, resolves every component
name in its registry, validates each component's own parameters, and checks data availability and
budgets against the data set, all before any compute. Errors name the YAML field and, where the
YAML parser knows it, the line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from robbench.budget import NORMS, format_eps, max_eps, parse_eps
from robbench.components import format_validation_error
from robbench.errors import RobbenchError, SuiteError

if TYPE_CHECKING:  # torch-free until a suite's structure is valid (fast `robbench validate` errors)
    from robbench.threat import ThreatModel

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$")
MAX_SAMPLES = 10_000_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_name(value: str, what: str) -> str:
    if not NAME_RE.match(value) or ".." in value:
        raise ValueError(f"{what} {value!r} must be 1-100 letters, digits, '_', '.', '+' or '-' (no '/', no '..')")
    return value


class DataSpec(_Strict):
    dataset: str
    split: str = "test"
    n_samples: int | None = Field(default=None, ge=1, le=MAX_SAMPLES)
    offset: int = Field(default=0, ge=0)
    indices: list[int] | None = None
    data_dir: str | None = None

    @model_validator(mode="after")
    def _one_selection(self) -> DataSpec:
        if self.indices is not None:
            if self.n_samples is not None:
                raise ValueError("give either n_samples or indices, not both")
            if not self.indices:
                raise ValueError("indices is empty")
            if len(set(self.indices)) != len(self.indices):
                raise ValueError("indices has duplicates")
            if min(self.indices) < 0:
                raise ValueError("indices must be >= 0")
        return self


class ThreatSpec(_Strict):
    norm: str
    eps: float

    @field_validator("norm")
    @classmethod
    def _norm(cls, v: str) -> str:
        v = v.lower()
        if v not in NORMS:
            raise ValueError(f"norm must be one of {list(NORMS)}, got {v!r}")
        return v

    @field_validator("eps", mode="before")
    @classmethod
    def _eps(cls, v: Any) -> float:
        eps = parse_eps(v)
        if not eps > 0 or eps != eps or eps == float("inf"):
            raise ValueError(f"eps must be positive and finite, got {v!r}")
        return eps

    def threat(self) -> ThreatModel:
        from robbench.threat import ThreatModel

        return ThreatModel(self.norm, self.eps)  # type: ignore[arg-type]


class ModelRef(_Strict):
    """A model: a zoo name, or an architecture plus a local checkpoint."""

    zoo: str | None = None
    arch: str | None = None
    checkpoint: str | None = None
    sha256: str | None = None
    format: Literal["state_dict", "ncsnv2", "robustbench"] = "state_dict"
    config: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, v: Any) -> Any:
        return {"zoo": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_kind(self) -> ModelRef:
        if (self.zoo is None) == (self.arch is None):
            raise ValueError("give either a zoo name or arch + checkpoint")
        if self.arch is not None and self.checkpoint is None:
            raise ValueError("arch needs a checkpoint path")
        return self

    def identity(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class DefenseSpec(_Strict):
    name: str
    id: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        return None if v is None else _check_name(v, "defense id")

    @property
    def display(self) -> str:
        return self.id or self.name


class AttackSpec(_Strict):
    id: str
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    gradient: Literal["full", "bpda", "classifier", "custom"] = "full"
    #: defense randomness: "det" = a seed known to the attacker, the same for every forward and the
    #: judgement; "fresh" = new draws at every forward
    randomness: Literal["det", "fresh"] = "fresh"
    eot: int = Field(default=1, ge=1, le=10_000)
    norms: list[str] | None = None
    #: only these defenses (display ids); default all
    defenses: list[str] | None = None
    #: attack a surrogate model instead (transfer); a zoo name or checkpoint reference
    surrogate: ModelRef | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_name(v, "attack id")


class ReportedSource(_Strict):
    paper: str
    table: str | None = None
    note: str | None = None


class Reported(_Strict):
    """A published number shown beside the measured one (``attack: worst-case`` = worst over attacks)."""

    defense: str
    attack: str
    norm: str | None = None
    eps: float | None = None
    accuracy: float = Field(ge=0, le=100)
    source: ReportedSource
    #: samples the paper evaluated on, when it says (shown beside the number)
    n: int | None = Field(default=None, ge=1)
    #: a method this suite does not run (e.g. not implemented in robbench): shown as a reported-only row
    reported_only: bool = False

    @field_validator("norm")
    @classmethod
    def _norm(cls, v: str | None) -> str | None:
        if v is not None and v.lower() not in NORMS:
            raise ValueError(f"norm must be one of {list(NORMS)}, got {v!r}")
        return None if v is None else v.lower()

    @field_validator("eps", mode="before")
    @classmethod
    def _eps(cls, v: Any) -> float | None:
        return None if v is None else parse_eps(v)


class Evaluation(_Strict):
    #: draws m used to score a stochastic defense (single / mean / majority / worst of m)
    draws: int = Field(default=1, ge=1, le=1000)
    scoring: Literal["single", "mean", "majority", "worst"] = "worst"
    batch_size: int = Field(default=128, ge=1, le=65536)
    #: AutoAttack-style cascade: each attack runs only on points still robust after the previous
    cascade: bool = False
    #: precision of the generative models only (score/diffusion nets; bf16 = torch.autocast, outputs
    #: back in float32); the classifier and the purifier arithmetic stay fp32. Changes results:
    #: part of the cell identity when not fp32.
    generative_precision: Literal["fp32", "bf16"] = "fp32"


class Suite(_Strict):
    name: str
    description: str | None = None
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    data: DataSpec
    classifier: ModelRef | None = None
    threats: list[ThreatSpec] = Field(min_length=1)
    defenses: list[DefenseSpec] = Field(min_length=1)
    attacks: list[AttackSpec] = Field(min_length=1)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    reported: list[Reported] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "suite name")

    @model_validator(mode="after")
    def _unique(self) -> Suite:
        for what, ids in (("attack id", [a.id for a in self.attacks]), ("defense id", [d.display for d in self.defenses])):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"duplicate {what}s: {dup}; give each an `id:`")
        threats = [(t.norm, t.eps) for t in self.threats]
        if len(set(threats)) != len(threats):
            raise ValueError("duplicate threats")
        defense_ids = {d.display for d in self.defenses}
        for a in self.attacks:
            for d in a.defenses or []:
                if d not in defense_ids:
                    raise ValueError(f"attack {a.id!r} names unknown defense {d!r} (have {sorted(defense_ids)})")
        return self

    def threat_models(self) -> list[ThreatModel]:
        return [t.threat() for t in self.threats]


def _yaml_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best effort: the 1-based line of the YAML node at ``loc`` (a pydantic error location)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == part:
                    nxt, line = v, k.start_mark.line + 1
                    break
            if nxt is None:
                return line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def parse_suite(text: str, source: str = "<suite>") -> Suite:
    """Parse and validate the document structure (no registry or data checks)."""
    from robbench.strict_yaml import load_yaml

    try:
        raw = load_yaml(text, source)  # safe loader; tags, duplicate keys and alias bombs refused
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SuiteError(f"{source}: YAML syntax error{where}: {problem}", hint="fix the YAML syntax") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{source}: a suite must be a YAML mapping with name, data, threats, defenses, attacks")
    try:
        return Suite.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        line = _yaml_line(text, tuple(err["loc"]))
        at = f" (line {line})" if line else ""
        raise SuiteError(f"{source}{at}: {format_validation_error(exc, 'suite')}") from None


def read_suite(path: str | Path) -> tuple[Suite, str]:
    p = Path(path)
    if not p.is_file():
        raise SuiteError(f"suite file {p} not found", hint="pass the path of a suite YAML, e.g. suites/quickstart.yaml")
    text = p.read_text(encoding="utf-8")
    return parse_suite(text, str(p)), text


def check_suite(suite: Suite, *, data_dir: str | None = None, check_models: bool = True) -> None:
    """Resolve every name, validate every component's parameters, check data and budgets.

    Raises :class:`SuiteError` / :class:`RobbenchError` with the field named. Computes nothing.
    """
    from robbench import registry
    from robbench.components import parse_params
    from robbench.data.base import load_dataset

    ds = _field(lambda: load_dataset(suite.data.dataset, data_dir or suite.data.data_dir), "suite.data.dataset")
    _field(lambda: ds.check_split(suite.data.split), "suite.data.split")
    _field(lambda: ds.check_available(suite.data.split), "suite.data")
    n_avail = ds.size(suite.data.split)
    if suite.data.indices is None and suite.data.offset >= n_avail:
        raise SuiteError(f"suite.data.offset: {suite.data.offset} is past the end of {ds.name}/{suite.data.split} "
                         f"({n_avail} samples)", hint=f"use an offset below {n_avail}")
    if suite.data.indices is not None:
        bad = [i for i in suite.data.indices if i >= n_avail]
        if bad:
            raise SuiteError(f"suite.data.indices: {bad[:5]} out of range; {ds.name}/{suite.data.split} has {n_avail} samples")
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
    from robbench.components import BuildContext

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
        _field(lambda: cls.check_params(params, ctx), f"suite.attacks.{i} ({a.id})")
        if a.eot > 1 and not getattr(cls, "supports_eot", True):
            raise SuiteError(f"suite.attacks.{i}.eot: attack {a.name!r} does not take its gradients from robbench's "
                             f"EoT (it calls the defense itself), so eot: {a.eot} cannot apply",
                             hint="remove `eot:`; for AutoAttack use version: rand or its eot_iter parameter")
        for n in a.norms or []:
            if n not in NORMS:
                raise SuiteError(f"suite.attacks.{i}.norms: unknown norm {n!r}; use {list(NORMS)}")
        wanted = set(a.norms or [t.norm for t in suite.threats])
        if not getattr(cls, "threat_free", False):
            unsupported = sorted(wanted & {t.norm for t in suite.threats} - set(cls.norms))
            if unsupported and a.norms is not None:
                raise SuiteError(f"suite.attacks.{i}: attack {a.name!r} does not support norm(s) {unsupported}; it supports {sorted(cls.norms)}")
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
    from robbench.summary import check_reported

    check_reported(suite, {a.id: bool(getattr(registry.attacks.get(a.name), "threat_free", False)) for a in suite.attacks})
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
