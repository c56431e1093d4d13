"""Suite validation: every bad input gives exit 2, one clear message naming the field, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from robbench.cli.app import app
from robbench.errors import RobbenchError
from robbench.run.validate import load_suite
from tests.conftest import base_suite

BAD = {
    "unknown top-level key": (dict(base_suite(), extra_key=1), "extra_key"),
    "unknown defense": (base_suite(defenses=[{"name": "nonee"}]), "Did you mean: none"),
    "unknown attack": (base_suite(attacks=[{"id": "x", "name": "pdg"}]), "Did you mean: pgd"),
    "unknown attack param": (base_suite(attacks=[{"id": "x", "name": "pgd", "params": {"stepz": 3}}]), "stepz"),
    "wrong param type": (base_suite(attacks=[{"id": "x", "name": "pgd", "params": {"steps": "many"}}]), "steps"),
    "negative eps": (base_suite(threats=[{"norm": "linf", "eps": -0.1}]), "eps"),
    "absurd linf eps": (base_suite(threats=[{"norm": "linf", "eps": 8}]), "8/255"),
    "absurd l2 eps": (base_suite(threats=[{"norm": "l2", "eps": 100}]), "l2 eps"),
    "unknown norm": (base_suite(threats=[{"norm": "l3", "eps": 0.1}]), "norm"),
    "eps not a number": (base_suite(threats=[{"norm": "linf", "eps": "eight"}]), "eps"),
    "unsupported norm for attack": (
        base_suite(threats=[{"norm": "l2", "eps": 0.5}], attacks=[{"id": "x", "name": "pgd", "norms": ["l3"]}]),
        "norm",
    ),
    "duplicate attack ids": (
        base_suite(attacks=[{"id": "a", "name": "pgd"}, {"id": "a", "name": "clean"}]),
        "duplicate attack id",
    ),
    "empty attacks": (base_suite(attacks=[]), "attacks"),
    "empty threats": (base_suite(threats=[]), "threats"),
    "too many samples": (base_suite(data={"dataset": "digits", "n_samples": 100000}), "n_samples"),
    "unknown dataset": (base_suite(data={"dataset": "digitz"}), "Did you mean: digits"),
    "unknown split": (base_suite(data={"dataset": "digits", "split": "val"}), "split"),
    "missing data": (base_suite(data={"dataset": "mnist", "data_dir": "/nonexistent"}), "not found"),
    "path traversal in name": (base_suite(name="../../etc"), "suite name"),
    "unknown zoo model": (base_suite(classifier="digits-cnnn"), "Did you mean: digits-cnn"),
    "bpda without purifier": (base_suite(attacks=[{"id": "b", "name": "pgd", "gradient": "bpda"}]), "BPDA"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_suite_is_rejected_before_compute(case: str, write_suite, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    suite, needle = BAD[case]
    path = write_suite(suite)
    with pytest.raises(RobbenchError) as info:
        load_suite(path)
    assert needle in str(info.value), str(info.value)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--quiet"])
    assert res.exit_code == 2, res.output
    assert not out.exists(), "a rejected suite must write nothing"


def test_yaml_syntax_error_names_the_line(write_suite) -> None:  # type: ignore[no-untyped-def]
    path = write_suite("name: t\nseed: 0\ndata: {dataset: digits\nthreats: []\n")
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 2
    assert "line" in res.output and "YAML syntax error" in res.output


def test_field_error_names_the_yaml_line(write_suite) -> None:  # type: ignore[no-untyped-def]
    path = write_suite(base_suite(threats=[{"norm": "linf", "eps": 0.1}, {"norm": "l2", "eps": "lots"}]))
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 2
    assert "suite.threats.1.eps" in res.output and "(line" in res.output


def test_valid_suite_passes(write_suite) -> None:  # type: ignore[no-untyped-def]
    res = CliRunner().invoke(app, ["validate", str(write_suite(base_suite()))])
    assert res.exit_code == 0, res.output
    assert "valid" in res.output


@pytest.mark.parametrize(
    "suite_file", sorted((Path(__file__).parents[1] / "suites").glob("*.yaml")), ids=lambda p: p.name
)
def test_shipped_suites_parse(suite_file: Path) -> None:
    """Every suite in suites/ parses; those whose data is here validate completely."""
    from robbench.errors import DataError
    from robbench.suite.load import read_suite

    read_suite(suite_file)
    try:
        load_suite(suite_file)
    except DataError as exc:  # e.g. cifar10 without the user's data: the message must say how to fix it
        assert exc.hint
