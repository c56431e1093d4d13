"""The committed results folders stay resumable and comparable: today's code, given the suite text each folder
stored, computes exactly the cell ids the folder's rows are filed under.

A cell id hashes the components' parameters (model references included) and the results version; the seeds of
every draw derive from it. A parameter or model-reference field added without care (a new field dumped as null)
changes every id, so a resume starts over and the CI gate compares different draws: this caught the
``robustbench`` field of model references doing exactly that (the gate failed on 14 cells)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from robbench.run.plan import Plan
from robbench.suite.load import parse_suite

ROOT = Path(__file__).resolve().parents[1]
RECORDED = [
    "ci_baseline",
    "digits_adaptive",
    "fashion_mnist",
    "fashion_mnist_adaptive",
    "fashion_mnist_diffpure_attacks",
]


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_cell_ids_are_what_todays_code_computes(name: str) -> None:
    folder = ROOT / "results" / name
    stored = {c["id"]: c.get("label", c["id"]) for c in json.loads((folder / "manifest.json").read_text())["cells"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = Plan(parse_suite((folder / "suite.yaml").read_text()))
    mine = {c.id: c.label for c in plan.cells}
    missing = sorted(stored[i] for i in set(stored) - set(mine))
    assert not missing, f"{name}: today's code files {len(missing)} stored cells under other ids, e.g. {missing[:3]}"
    assert set(mine) == set(stored)
