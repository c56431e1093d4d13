"""The runner: plan cells, skip finished rows, batch, attack, check containment, judge, write shards.

A *cell* is one (defense, attack, threat); the clean attack is threat-free. A *unit* is a cell
and a list of samples; units are independent and carry their own seeds (derived from the suite
seed, the cell and each sample id), so any split of the work gives the same rows. The runner,
never the attack, judges success with the real defense, and asserts on every sample that the
adversarial image lies in the threat ball and in [0, 1].
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from robbench.core import registry
from robbench.core.components import parse_params
from robbench.core.identity import component_identity, stable_hash
from robbench.core.threat import ThreatModel
from robbench.data.base import load_dataset
from robbench.suite.check import check_suite
from robbench.suite.model import AttackSpec, DefenseSpec, Suite
from robbench.zoo import model_identity


@dataclass
class Cell:
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

    @property
    def seed_key(self) -> str:
        return self.rng_id or self.id

    @property
    def label(self) -> str:
        t = self.threat.label if self.threat else "clean"
        return f"{self.defense.display} / {self.attack.id} / {t}"

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "defense": self.defense.display,
            "defense_name": self.defense.name,
            "attack": self.attack.id,
            "attack_name": self.attack.name,
            "gradient": self.attack.gradient,
            "randomness": self.randomness,
            "eot": self.eot,
            "draws": self.draws,
            "stochastic": self.stochastic,
            "norm": self.threat.norm if self.threat else "none",
            "eps": self.threat.eps if self.threat else 0.0,
            "threat": self.threat.id if self.threat else "none",
            "label": self.label,
            **({"eot_requested": self.eot_requested} if self.eot_requested is not None else {}),
        }


@dataclass
class Unit:
    cell: Cell
    indices: list[int]  # positions in the selected data subset


class Plan:
    """Everything resolved for a suite: data subset, cells, identities. Computes nothing heavy."""

    def __init__(
        self, suite: Suite, *, suite_text: str = "", data_dir: str | None = None, zoo_dir: str | None = None
    ) -> None:
        check_suite(suite, data_dir=data_dir)
        self.suite = suite
        self.suite_text = suite_text
        self.data_dir = data_dir or suite.data.data_dir
        self.zoo_dir = zoo_dir
        self.dataset = load_dataset(suite.data.dataset, self.data_dir)
        n = self.dataset.size(suite.data.split)
        if suite.data.indices is not None:
            self.sample_positions = list(suite.data.indices)
        else:
            count = suite.data.n_samples or (n - suite.data.offset)
            self.sample_positions = list(range(suite.data.offset, suite.data.offset + count))
        self.classifier_identity = model_identity(suite.classifier) if suite.classifier else None
        self.data_identity = {"dataset": suite.data.dataset, "split": suite.data.split}
        #: warnings about the suite found while planning (EoT forced to 1, ...): `robbench validate`
        #: prints them, the manifest records them
        self.notes: list[str] = []
        self.cells = self._cells()
        self.cascade = None
        if suite.evaluation.cascade:
            from robbench.run.cascade import Cascade

            self.cascade = Cascade(self.cells, suite.evaluation.scoring)

    def _cells(self) -> list[Cell]:
        s = self.suite
        cells = []
        for d in s.defenses:
            dcls = registry.defenses.get(d.name)
            dparams = parse_params(dcls.Params, d.params, f"defense {d.display}")
            did = component_identity(d.name, dparams, dcls.runtime_params)
            stochastic = bool(dcls.stochastic)
            dhash = stable_hash(
                {"defense": did, "classifier": self.classifier_identity, "data": self.data_identity, "seed": s.seed}
            )
            for a in s.attacks:
                if a.defenses is not None and d.display not in a.defenses:
                    continue
                acls = registry.attacks.get(a.name)
                aparams = parse_params(acls.Params, a.params, f"attack {a.id}")
                aid = component_identity(a.name, aparams, acls.runtime_params)
                threats: list[ThreatModel | None]
                if acls.threat_free:
                    threats = [None]
                else:
                    threats = [t for t in s.threat_models() if a.norms is None or t.norm in a.norms]
                randomness = a.randomness if stochastic else "none"
                eot, why = a.eot, None
                if a.eot > 1:
                    why = (
                        f"defense {d.display!r} is deterministic"
                        if not stochastic
                        else "randomness det fixes the defense's draws"
                        if a.randomness == "det"
                        else f"attack {a.name!r} is gradient-free"
                        if not acls.uses_gradients
                        else "gradient classifier bypasses the defense's randomness"
                        if a.gradient == "classifier"
                        else "a transfer attack takes gradients from its surrogate"
                        if a.surrogate is not None
                        else None
                    )
                    eot = 1 if why else a.eot
                if why:
                    note = f"attack {a.id}: EoT({a.eot}) is pointless on defense {d.display!r} ({why}); k forced to 1 (recorded)"
                    self.notes.append(note)
                    warnings.warn(note, stacklevel=2)
                draws = s.evaluation.draws if (stochastic and randomness == "fresh") else 1
                surrogate = model_identity(a.surrogate) if a.surrogate else None
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
                    if s.evaluation.generative_precision != "fp32":
                        # its own cell, but the fp32 cell's seeds: the runs differ in arithmetic only
                        rng_id = stable_hash(ident)
                        ident["generative_precision"] = s.evaluation.generative_precision
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
                        )
                    )
        return cells

    def manifest(self, device: torch.device, batch_size: int, out: Path) -> dict[str, Any]:
        from robbench.run.environment import environment

        return {
            "suite_name": self.suite.name,
            "suite": self.suite.model_dump(mode="json"),
            "suite_text": self.suite_text,
            "cells": [c.describe() for c in self.cells],
            "n_samples": len(self.sample_positions),
            "classifier": self.classifier_identity,
            "environment": environment(),
            "device": str(device),
            "batch_size": batch_size,
            "out": str(out),
            "command": " ".join(sys.argv),
            "rerun": f"robbench run {self.suite.name}.yaml --out {out}",
            "notes": list(self.notes),
        }


def plan_units(plan: Plan, done: dict[str, set[str]], shard_size: int) -> list[Unit]:
    """Units for every (cell, sample) not yet stored, in chunks of ``shard_size`` samples."""
    ids = [f"{plan.dataset.name}/{plan.suite.data.split}/{p}" for p in plan.sample_positions]
    units = []
    for cell in plan.cells:
        have = done.get(cell.id, set())
        missing = [i for i, sid in enumerate(ids) if sid not in have]
        for s in range(0, len(missing), shard_size):
            units.append(Unit(cell, missing[s : s + shard_size]))
    return units
