"""The CIFAR-10 path end to end (issue 15): ``suites/cifar10_smoke.yaml`` keeps the structure of
``suites/cifar10.yaml`` and runs on CPU on random-weight files in the official layouts at the published
sizes (tests/cifar10_fixtures.py); the real suite validates against the same files."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from robbench.cli.app import app
from robbench.results.load import load_results
from tests.cifar10_fixtures import SMOKE, write_cifar10_fixtures
from tests.conftest import ROOT

pytest.importorskip("diffusers")
runner = CliRunner()
SUITES = ROOT / "suites"


def _load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((SUITES / name).read_text())
    return doc


def _attack_shape(a: dict[str, Any]) -> tuple[Any, ...]:
    return (a["id"], a["name"], a.get("gradient"), a.get("randomness"), a.get("norms"), a.get("defenses"))


def _model_files(doc: dict[str, Any]) -> list[Any]:
    """(arch, file name, format) of every model: the smoke suite's are small copies in the same layouts."""
    refs = [doc["classifier"]]
    for d in doc["defenses"]:
        refs += [v for k, v in (d.get("params") or {}).items() if k.endswith("_model")]
    return [(r["arch"], Path(r["checkpoint"]).name, r.get("format")) for r in refs]


def test_the_smoke_suite_has_the_structure_of_the_real_one() -> None:
    real, smoke = _load("cifar10.yaml"), _load("cifar10_smoke.yaml")
    assert smoke["threats"] == real["threats"]
    assert [(d["id"], d["name"]) for d in smoke["defenses"]] == [(d["id"], d["name"]) for d in real["defenses"]]
    assert [_attack_shape(a) for a in smoke["attacks"]] == [_attack_shape(a) for a in real["attacks"]]
    assert _model_files(smoke) == _model_files(real)
    assert smoke["data"]["dataset"] == real["data"]["dataset"] and smoke["data"]["n_samples"] == 2
    assert smoke["classifier"]["config"] == SMOKE["wrn28_10"]  # what tests/cifar10_fixtures.py writes


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar10")
    write_cifar10_fixtures(root)
    for name in ("cifar10.yaml", "cifar10_smoke.yaml"):
        shutil.copy(SUITES / name, root / name)
    return root


def test_the_real_suite_validates_against_the_official_layouts(cifar_root: Path) -> None:
    """Every checkpoint of the real suite, in its official layout and at its published size, passes
    validation (the stand-in batch has 10 images, so the copy asks for 10 instead of 1000)."""
    real = _load("cifar10.yaml")
    real["data"]["n_samples"] = 10
    suite = cifar_root / "cifar10_n10.yaml"
    suite.write_text(yaml.safe_dump(real))
    data = cifar_root / "data" / "cifar-10-batches-py"
    res = runner.invoke(app, ["validate", str(suite), "--data-dir", str(data)])
    assert res.exit_code == 0, res.output
    assert "adaptive on diffpure:" in res.output and "DiffAttack20-EoT8" in res.output


def test_the_smoke_suite_runs_end_to_end_on_cpu(cifar_root: Path) -> None:
    data = cifar_root / "data" / "cifar-10-batches-py"
    out = cifar_root / "results"
    args = ["run", str(cifar_root / "cifar10_smoke.yaml"), "--data-dir", str(data), "--out", str(out)]
    # --no-checks: the false-robustness checks run PGD-20 at a huge budget per defense, mode and norm (42 runs,
    # two thirds of the time here); they are covered on digits (tests/test_protocols.py, tests/test_honest_defaults.py)
    res = runner.invoke(app, [*args, "--quiet", "--table", "none", "--threads", "2", "--no-checks"])
    assert res.exit_code == 0, res.output
    table = runner.invoke(app, ["table", str(out), "--format", "md"])
    assert table.exit_code == 0 and "| pursamere-16 | worst-case | L1 12 |" in table.output, table.output
    loaded = load_results(out)
    rows = loaded.rows
    cells = loaded.manifest.cells
    assert len(rows) == 2 * len(cells)
    assert rows["error"].isna().all(), rows.loc[rows["error"].notna(), "error"].tolist()
    assert set(rows["defense"]) == {d["id"] for d in _load("cifar10_smoke.yaml")["defenses"]}
    assert set(rows["norm"]) == {"none", "linf", "l2", "l1"}
    assert any(a.id.startswith("adaptive.") for a in loaded.manifest.suite.attacks)
