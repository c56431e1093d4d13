"""The typed manifest of a results directory (``manifest.json``).

The run writes it (:mod:`robbench.run.session`) and every reader parses it with :meth:`Manifest.parse`,
so tables, comparisons, plots and checks read attributes instead of ``.get()`` chains, and a damaged
manifest is one clear :class:`~robbench.errors.ResultsError`. Manifests written by older versions
lack some newer fields: those have defaults. Unknown fields are kept (``extra="allow"``), so a newer
robbench's manifest is still readable here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from robbench.core.components import format_validation_error
from robbench.errors import ResultsError
from robbench.suite.model import AttackSpec, Suite

#: stopped: ``--max-minutes`` ran out with units left (a rerun of the same command resumes)
Status = Literal["running", "complete", "failed", "aborted", "stopped"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class CellRecord(_Record):
    """What the manifest says of one cell (see :class:`robbench.run.cells.Cell`)."""

    id: str
    defense: str
    defense_name: str
    attack: str
    attack_name: str
    gradient: str
    randomness: str
    eot: int
    draws: int
    stochastic: bool
    norm: str
    eps: float
    threat: str
    label: str
    #: the EoT the suite asked for, when it was forced to 1
    eot_requested: int | None = None
    #: adaptive | adaptive (weak) | gray-box | transfer | clean (None: written before results version 2)
    evaluation: str | None = None
    #: why an adaptive attack counts as weak
    weak: str | None = None


class CheckRecord(_Record):
    """One result of :mod:`robbench.run.checks`; checks add their numbers as extra fields."""

    check: str
    status: Literal["ok", "flag", "info"]
    subject: str
    message: str

    def number(self, key: str) -> Any:
        """An extra field (``accuracy``, ``threshold``, ...), or None."""
        return (self.model_extra or {}).get(key)


class Manifest(_Record):
    """``manifest.json``: the resolved suite, its cells, how and where it ran, and what was found."""

    suite_name: str
    suite: Suite
    suite_text: str = ""
    cells: list[CellRecord]
    n_samples: int | None = None
    classifier: dict[str, Any] | None = None
    environment: dict[str, Any] = Field(default_factory=dict)
    device: str = ""
    batch_size: int | None = None
    out: str = ""
    command: str = ""
    rerun: str = ""
    notes: list[str] = Field(default_factory=list)
    status: Status | None = None
    started: str | None = None
    finished: str | None = None
    seconds: float | None = None
    failures: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    #: None when the checks were not run (``--no-checks``); a list (maybe empty) when they were
    checks: list[CheckRecord] | None = None
    #: what the checks were computed from (cells, stored rows, checkpoints, code): a warm rerun with the
    #: same key reuses them instead of recomputing
    checks_key: str | None = None
    checkpoints: dict[str, str | None] = Field(default_factory=dict)
    execution: dict[str, Any] = Field(default_factory=dict)
    git_sha: str | None = None
    git_dirty: bool | None = None
    #: every code version (robbench, results version, git SHA) the stored rows of these cells came from
    code_versions: list[dict[str, Any]] = Field(default_factory=list)
    seed: int | None = None
    deterministic: bool = False
    shard_size: int | None = None
    threads: int | None = None
    data_dir: str | None = None
    zoo_dir: str | None = None
    cwd: str | None = None

    @classmethod
    def parse(cls, raw: Any, where: str) -> Manifest:
        """Validate a manifest read from ``where``; a :class:`ResultsError` naming the field otherwise."""
        hint = "the manifest was edited or damaged; re-run the suite into a fresh --out"
        if not isinstance(raw, dict):
            raise ResultsError(f"{where} is corrupt: not a JSON object", hint=hint)
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ResultsError(f"{where} is corrupt: {format_validation_error(exc, 'manifest')}", hint=hint) from None

    def dump(self) -> dict[str, Any]:
        """The JSON-ready form written to ``manifest.json``."""
        out = self.model_dump(mode="json", exclude_none=False)
        out["cells"] = [c.model_dump(mode="json", exclude_none=True) for c in self.cells]
        return out

    @property
    def scoring(self) -> str:
        """The suite's scoring of stochastic defenses (single | mean | majority | worst)."""
        return self.suite.evaluation.scoring

    def attack_spec(self, attack_id: str) -> AttackSpec | None:
        return next((a for a in self.suite.attacks if a.id == attack_id), None)

    @property
    def cell_ids(self) -> set[str]:
        return {c.id for c in self.cells}
