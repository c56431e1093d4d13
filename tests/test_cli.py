"""The CLI through Typer's test runner: run, table in every format, ls, validate, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robbench.cli.app import app
from tests.conftest import base_suite

runner = CliRunner()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, zoo_dir) -> Path:  # type: ignore[no-untyped-def]
    import yaml

    d = tmp_path_factory.mktemp("cli")
    suite = d / "s.yaml"
    suite.write_text(
        yaml.safe_dump(
            base_suite(
                reported=[
                    {"defense": "none", "attack": "clean", "accuracy": 97.0, "source": {"paper": "test", "table": "T1"}}
                ]
            )
        )
    )
    res = runner.invoke(app, ["run", str(suite), "--out", str(d / "out"), "--quiet", "--table", "md"])
    assert res.exit_code == 0, res.output
    return d / "out"


@pytest.mark.parametrize("fmt", ["rich", "md", "csv", "latex", "json"])
def test_table_formats(results: Path, fmt: str) -> None:
    res = runner.invoke(app, ["table", str(results), "--format", fmt])
    assert res.exit_code == 0, res.output
    assert "PGD5" in res.output
    if fmt == "json":
        rows = json.loads(res.stdout)
        assert {"defense", "attack", "norm", "eps", "n", "accuracy", "ci_low", "ci_high"} <= set(rows[0])
        clean = [r for r in rows if r["attack"] == "clean"][0]
        assert clean["reported"] == pytest.approx(0.97) and "test" in clean["source"]
    if fmt == "latex":
        assert "\\toprule" in res.output and "\\bottomrule" in res.output


def test_table_errors() -> None:
    res = runner.invoke(app, ["table", "/nonexistent/dir"])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_ls_kinds() -> None:
    res = runner.invoke(app, ["ls"])
    assert res.exit_code == 0 and "pgd" in res.output and "digits" in res.output
    bad = runner.invoke(app, ["ls", "defences"])
    assert bad.exit_code == 2 and "defenses" in bad.output


def test_cuda_requested_without_cuda(tmp_path: Path, write_suite) -> None:  # type: ignore[no-untyped-def]
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = runner.invoke(app, ["run", str(write_suite(base_suite())), "--device", "cuda", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no CUDA device" in res.output
    assert not (tmp_path / "o").exists()


def test_validate_takes_the_run_commands_zoo_dir(tmp_path: Path, zoo_dir) -> None:  # type: ignore[no-untyped-def]
    """`robbench validate` accepts the `--zoo-dir` a user copies from the run command, and checks nothing less."""
    import yaml

    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(base_suite()))
    res = runner.invoke(app, ["validate", str(suite), "--zoo-dir", str(zoo_dir)])
    assert res.exit_code == 0 and "valid:" in res.output, res.output
    bad = dict(base_suite(), attacks=[{"id": "x", "name": "pgdd", "params": {}}])
    suite.write_text(yaml.safe_dump(bad))
    res = runner.invoke(app, ["validate", str(suite), "--zoo-dir", str(zoo_dir)])
    assert res.exit_code == 2 and "pgdd" in res.output
