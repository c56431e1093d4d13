"""The suite's pydantic models (unknown keys rejected): data, threats, defenses, attacks, evaluation."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from robbench.core.budget import NORMS, eps_key, format_eps, parse_eps
from robbench.core.refs import ModelRef

if TYPE_CHECKING:  # torch-free until a suite's structure is valid (fast `robbench validate` errors)
    from robbench.core.threat import ThreatModel


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
        from robbench.core.threat import ThreatModel

        return ThreatModel(self.norm, self.eps)  # type: ignore[arg-type]


class DefenseSpec(_Strict):
    name: str
    id: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    #: this defense's classifier instead of the suite's (a paper's own model beside the baselines' one)
    classifier: ModelRef | None = None

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
    #: why this attack reads ``adaptive (weak)`` whatever its strength (``adaptive``'s quick level sets it
    #: on its det-only protocols; a suite may set it too: it can only lower a label, never raise one)
    weak: str | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_name(v, "attack id")

    @property
    def evaluation(self) -> EvaluationKind:
        """What this attack's accuracy says about a defense: ``adaptive`` (it attacks the defense itself:
        full, BPDA or custom gradients, or queries) or an upper bound: ``gray-box`` (the classifier
        alone) or ``transfer`` (a surrogate)."""
        if self.surrogate is not None:
            return "transfer"
        return "gray-box" if self.gradient == "classifier" else "adaptive"


EvaluationKind = Literal["adaptive", "gray-box", "transfer"]


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

    @property
    def key(self) -> tuple[str, str, str | None, float | None]:
        """(defense, attack, norm, eps key): the table cell this number belongs beside."""
        return (self.defense, self.attack, self.norm, eps_key(self.eps))

    @property
    def source_text(self) -> str:
        """``paper, table (note)``: shown as a numbered footnote beside the reported number."""
        s = self.source
        text = ", ".join(v for v in (s.paper, s.table) if v)
        return f"{text} ({s.note})" if s.note else text


#: judge draws of a stochastic defense when the suite does not say (worst of 4: Sec. "honest defaults")
DEFAULT_DRAWS = 4
#: fewer judge draws than this on a stochastic defense is refused unless overridden, and flagged
MIN_HONEST_DRAWS = 4
#: what ``evaluation.overrides`` may allow; each is recorded in the manifest and shown beside its cells
Override = Literal["few-draws", "scoring", "det-seeds-judge", "library-early-stop"]


class Evaluation(_Strict):
    #: judge draws m of every cell of a stochastic defense, det or fresh (default 4); fewer than 4
    #: needs ``overrides: [few-draws]``; a det cell's draw 0 is the attacker's seeds
    draws: int | None = Field(default=None, ge=1, le=1000)
    #: the headline scoring of those draws; anything but ``worst`` needs ``overrides: [scoring]``
    #: (``robbench table --scoring`` shows the others from the same rows at any time)
    scoring: Literal["single", "mean", "majority", "worst"] = "worst"
    #: explicit permissions for evaluations that can overstate robustness (recorded, shown, flagged)
    overrides: list[Override] = Field(default_factory=list)
    batch_size: int = Field(default=128, ge=1, le=65536)
    #: AutoAttack-style cascade: each attack runs only on points still robust after the previous
    cascade: bool = False
    #: precision of the generative models only (score/diffusion nets; bf16 = torch.autocast, outputs
    #: back in float32); the classifier and the purifier arithmetic stay fp32. Changes results:
    #: part of the cell identity when not fp32.
    generative_precision: Literal["fp32", "bf16"] = "fp32"
    #: store the first N samples of every attacked cell as images (clean, adversarial, purified) under
    #: ``examples/`` for the report's gallery; never changes a row or a cell identity
    save_examples: int = Field(default=0, ge=0, le=64)

    @property
    def judge_draws(self) -> int:
        """The judge draws of a stochastic defense (every attack, det or fresh)."""
        return self.draws if self.draws is not None else DEFAULT_DRAWS


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

    @model_validator(mode="before")
    @classmethod
    def _near_duplicate_threats(cls, raw: Any) -> Any:
        """Two budgets of one norm within 1e-6 of each other (``8/255`` and ``0.031372549``) are one threat
        written twice: refused, naming both as written."""
        threats = raw.get("threats") if isinstance(raw, dict) else None
        if not isinstance(threats, list):
            return raw
        seen: list[tuple[int, str, float, str]] = []
        for j, t in enumerate(threats):
            if not isinstance(t, dict) or not isinstance(t.get("norm"), str):
                continue
            try:
                eps = parse_eps(t["eps"])
            except (KeyError, TypeError, ValueError):
                continue  # reported by the field's own validation
            for i, norm, other, written in seen:
                if norm == t["norm"] and eps != other and abs(eps - other) <= 1e-6:
                    raise ValueError(
                        f"threats.{j} ({norm} eps {t.get('eps')}) and threats.{i} ({norm} eps {written}) differ by "
                        f"{abs(eps - other):.1e}: the same budget written twice; keep one"
                    )
            seen.append((j, t["norm"], eps, str(t.get("eps"))))
        return raw

    @field_validator("threats")
    @classmethod
    def _distinct_threats(cls, v: list[ThreatSpec]) -> list[ThreatSpec]:
        seen: dict[tuple[str, float], int] = {}
        for j, t in enumerate(v):
            i = seen.setdefault((t.norm, t.eps), j)
            if i != j:
                raise ValueError(f"threats.{j} ({t.norm} eps {format_eps(t.eps)}) repeats threats.{i}; remove one")
        return v

    @model_validator(mode="after")
    def _unique(self) -> Suite:
        for what, ids in (
            ("attack id", [a.id for a in self.attacks]),
            ("defense id", [d.display for d in self.defenses]),
        ):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"duplicate {what}s: {dup}; give each an `id:`")
        defense_ids = {d.display for d in self.defenses}
        for a in self.attacks:
            for d in a.defenses or []:
                if d not in defense_ids:
                    raise ValueError(f"attack {a.id!r} names unknown defense {d!r} (have {sorted(defense_ids)})")
        norms = {t.norm for t in self.threats}
        for i, a in enumerate(self.attacks):
            known = [n for n in a.norms or [] if n in ("linf", "l2", "l1")]  # unknown names: reported later
            if known and not norms & set(known):
                raise ValueError(
                    f"attacks.{i} ({a.id}) runs only at norms {a.norms}, and the suite has no threat of them "
                    f"(threats: {sorted(norms)}): it would compute nothing; add such a threat or fix `norms:`"
                )
        return self

    def threat_models(self) -> list[ThreatModel]:
        return [t.threat() for t in self.threats]
