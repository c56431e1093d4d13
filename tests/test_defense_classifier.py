"""A classifier per defense (issue 15): a defense may name its own classifier instead of the suite's (a paper's
own model beside the baselines'); it is what the defense classifies with, gray-box attacks included, and part of
the defense's identity; naming the suite's own classifier changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from robbench.data.base import load_dataset
from robbench.results.load import load_results
from robbench.run.cells import Identities, defense_hash
from robbench.suite.model import Suite
from robbench.zoo import load_model, model_identity
from tests.conftest import base_suite, run_suite_cli


def test_each_defense_classifies_with_its_own_classifier(write_suite: Any, tmp_path: Path, zoo_dir: Path) -> None:
    defenses = [{"name": "none", "id": "plain"}, {"name": "none", "id": "adv", "classifier": "digits-cnn-adv"}]
    attacks = [{"id": "clean", "name": "clean"}, {"id": "gPGD5", "name": "pgd", "params": {"steps": 5}}]
    suite = base_suite(defenses=defenses, attacks=attacks, data={"dataset": "digits", "n_samples": 64})
    loaded, _ = run_suite_cli(write_suite(suite), tmp_path / "res", zoo_dir)
    rows = loaded.rows
    test = load_dataset("digits").load("test")
    x, y = test.x[:64], test.y[:64]
    for did, name in (("plain", "digits-cnn"), ("adv", "digits-cnn-adv")):
        model = load_model(name, zoo_dir=zoo_dir, quiet=True).eval()
        with torch.no_grad():
            expected = (model(x).argmax(1) == y).float().mean().item()
        clean = rows[(rows["defense"] == did) & (rows["attack"] == "clean")]["clean_correct"].mean()
        assert abs(clean - expected) < 1e-9, (did, clean, expected)
    pgd = rows[rows["attack"] == "gPGD5"].groupby("defense")["adv_correct"].mean()
    assert pgd["adv"] > pgd["plain"] + 0.2  # the adversarially trained classifier is attacked through itself
    clean_ids = {c.defense: c.id for c in loaded.manifest.cells if c.attack == "clean"}
    assert clean_ids["plain"] != clean_ids["adv"]
    assert "classifier:adv" in load_results(tmp_path / "res").manifest.model_dump_json()


def test_naming_the_suites_classifier_changes_no_identity() -> None:
    suite = Suite.model_validate(base_suite())
    same = Suite.model_validate(base_suite(defenses=[{"name": "none", "classifier": "digits-cnn"}]))
    assert suite.classifier is not None
    ids = Identities(model_identity(suite.classifier), {"dataset": "digits", "split": "test"})
    assert defense_hash(suite, suite.defenses[0], ids) == defense_hash(same, same.defenses[0], ids)
