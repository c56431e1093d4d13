"""Cells: one (defense, attack, threat) of a suite, and the identity its rows are stored under.

A cell's id hashes exactly what changes its rows (defense and classifier identities, data, seed,
attack and its parameters, gradient mode, randomness, EoT, judge draws, surrogate, threat), never
batch size, device or paths; stored rows are reused only under the same id. The clean attack is
threat-free: one cell per defense.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from robbench.core import registry
from robbench.core.components import parse_params
from robbench.core.identity import component_identity, stable_hash
from robbench.core.threat import ThreatModel
from robbench.results.schema import CellColumns
from robbench.run.strength import attack_strength
from robbench.suite.model import AttackSpec, DefenseSpec, Suite
from robbench.zoo import model_identity


@dataclass
class Cell:
    """One defense x attack x threat of a plan."""

    id: str
    defense: DefenseSpec
    attack: AttackSpec
    threat: ThreatModel | None
    stochastic: bool
    eot: int
    draws: int
    randomness: str
    defense_hash: str
    #: the EoT the suite asked for, when it was forced to 1 (recorded in the manifest)
    eot_requested: int | None = None
    #: the id the attack's seeds derive from when it differs from ``id`` (a cascaded cell keeps its
    #: non-cascade seeds, so the samples it attacks get exactly the rows a full run gives them)
    rng_id: str | None = None
    #: adaptive | adaptive (weak) | gray-box | transfer (:mod:`robbench.run.strength`); clean cells: clean
    evaluation: str = "adaptive"
    #: why an adaptive attack is weak
    weak: str | None = None

    @property
    def seed_key(self) -> str:
        return self.rng_id or self.id

    @property
    def threat_label(self) -> str | None:
        return self.threat.label if self.threat else None

    @property
    def label(self) -> str:
        return f"{self.defense.display} / {self.attack.id} / {self.threat_label or 'clean'}"

    @property
    def columns(self) -> CellColumns:
        """The identity columns of this cell's rows."""
        t = self.threat
        return CellColumns(
            cell=self.id,
            defense=self.defense.display,
            defense_name=self.defense.name,
            stochastic=self.stochastic,
            attack=self.attack.id,
            attack_name=self.attack.name,
            gradient=self.attack.gradient,
            randomness=self.randomness,
            eot=self.eot,
            norm=t.norm if t else "none",
            eps=t.eps if t else 0.0,
            threat=t.id if t else "none",
            draws=self.draws,
        )

    def describe(self) -> dict[str, Any]:
        """The manifest's record of this cell (:class:`robbench.results.manifest.CellRecord`)."""
        c = self.columns
        out: dict[str, Any] = {
            "id": self.id,
            "defense": c.defense,
            "defense_name": c.defense_name,
            "attack": c.attack,
            "attack_name": c.attack_name,
            "gradient": c.gradient,
            "randomness": c.randomness,
            "eot": c.eot,
            "draws": c.draws,
            "stochastic": c.stochastic,
            "norm": c.norm,
            "eps": c.eps,
            "threat": c.threat,
            "label": self.label,
        }
        if self.eot_requested is not None:
            out["eot_requested"] = self.eot_requested
        out["evaluation"] = self.evaluation
        if self.weak:
            out["weak"] = self.weak
        return out


def eot_pointless(defense: DefenseSpec, attack: AttackSpec, stochastic: bool, uses_gradients: bool) -> str | None:
    """Why EoT(k > 1) cannot average anything on this cell (then k is forced to 1), or None."""
    if attack.eot <= 1:
        return None
    if not stochastic:
        return f"defense {defense.display!r} is deterministic"
    if attack.randomness == "det":
        return "randomness det fixes the defense's draws"
    if not uses_gradients:
        return f"attack {attack.name!r} is gradient-free"
    if attack.gradient == "classifier":
        return "gradient classifier bypasses the defense's randomness"
    if attack.surrogate is not None:
        return "a transfer attack takes gradients from its surrogate"
    return None


@dataclass(frozen=True)
class Identities:
    """What every cell of a plan hashes besides its own defense and attack."""

    classifier: dict[str, Any] | None
    data: dict[str, Any]


def defense_hash(suite: Suite, d: DefenseSpec, ids: Identities) -> str:
    """The identity of a defense as built for this suite (parameters, classifier, data, seed)."""
    cls = registry.defenses.get(d.name)
    did = component_identity(d.name, parse_params(cls.Params, d.params, f"defense {d.display}"), cls.runtime_params)
    classifier = model_identity(d.classifier) if d.classifier is not None else ids.classifier
    return stable_hash({"defense": did, "classifier": classifier, "data": ids.data, "seed": suite.seed})


def judge_draws_of(suite: Suite, stochastic: bool, randomness: str) -> int:
    """The judge draws of a cell: the suite's m for every cell of a stochastic defense, whatever the attack's
    randomness (a ``det`` cell's draw 0 is the attacker's seeds, the others fresh); one draw on the
    attacker's seeds only under the named protocol ``overrides: [det-seeds-judge]`` (flagged)."""
    if not stochastic:
        return 1
    if randomness == "det" and "det-seeds-judge" in suite.evaluation.overrides:
        return 1
    return suite.evaluation.judge_draws


def build_cells(suite: Suite, ids: Identities, notes: list[str]) -> list[Cell]:
    """Every cell of the suite, in suite order (defense, attack, threat); planning notes go to ``notes``."""
    cells = []
    for d in suite.defenses:
        dhash = defense_hash(suite, d, ids)
        for a in suite.attacks:
            if a.defenses is None or d.display in a.defenses:
                cells.extend(_attack_cells(suite, d, a, dhash, notes))
    return cells


def _planning_notes(
    d: DefenseSpec, a: AttackSpec, stochastic: bool, threat_free: bool, why: str | None, notes: list[str]
) -> None:
    """Warn (and note in the manifest) about EoT or det randomness that cannot apply to this cell."""
    if why:
        note = f"attack {a.id}: EoT({a.eot}) is pointless on defense {d.display!r} ({why}); k forced to 1 (recorded)"
        notes.append(note)
        warnings.warn(note, stacklevel=4)
    if not stochastic and a.randomness == "det" and not threat_free:
        note = (
            f"attack {a.id}: randomness det is pointless on defense {d.display!r} (defense {d.display!r} is "
            "deterministic: it has no draws to fix); recorded as randomness none"
        )
        notes.append(note)
        warnings.warn(note, stacklevel=4)


def _attack_cells(suite: Suite, d: DefenseSpec, a: AttackSpec, dhash: str, notes: list[str]) -> list[Cell]:
    stochastic = bool(registry.defenses.get(d.name).stochastic)
    acls = registry.attacks.get(a.name)
    aid = component_identity(a.name, parse_params(acls.Params, a.params, f"attack {a.id}"), acls.runtime_params)
    threats: list[ThreatModel | None] = (
        [None] if acls.threat_free else [t for t in suite.threat_models() if a.norms is None or t.norm in a.norms]
    )
    randomness = a.randomness if stochastic else "none"
    why = eot_pointless(d, a, stochastic, acls.uses_gradients)
    eot = 1 if why else a.eot
    _planning_notes(d, a, stochastic, bool(acls.threat_free), why, notes)
    draws = judge_draws_of(suite, stochastic, randomness)
    surrogate = model_identity(a.surrogate) if a.surrogate else None
    kind, weak = (
        ("clean", None)
        if acls.threat_free
        else attack_strength(a, stochastic=stochastic, randomness=randomness, eot=eot)
    )
    cells = []
    for t in threats:
        ident = {
            "defense": dhash,
            "defense_id": d.display,
            "attack": aid,
            "attack_id": a.id,
            "gradient": a.gradient if acls.uses_gradients else "none",
            "randomness": randomness,
            "eot": eot,
            "draws": draws,
            "surrogate": surrogate,
            "threat": [t.norm, t.eps] if t else None,
        }
        rng_id = None
        if suite.evaluation.generative_precision != "fp32":
            # its own cell, but the fp32 cell's seeds: the runs differ in arithmetic only
            rng_id = stable_hash(ident)
            ident["generative_precision"] = suite.evaluation.generative_precision
        cells.append(
            Cell(
                stable_hash(ident),
                d,
                a,
                t,
                stochastic,
                eot,
                draws,
                randomness,
                dhash,
                a.eot if why else None,
                rng_id=rng_id,
                evaluation=kind,
                weak=weak,
            )
        )
    return cells
