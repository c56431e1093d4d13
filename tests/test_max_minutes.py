"""``robbench run --max-minutes N`` (issue 25): no unit starts after N minutes, the units in flight are
stored, the manifest says "stopped", and the same command resumes to the rows of an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from robbench.cli import app
from tests.conftest import base_suite
from tests.rowtools import assert_same_rows, raw_rows

runner = CliRunner()


def _run(path: Path, out: Path, *extra: str) -> Any:
    return runner.invoke(
        app, ["run", str(path), "--out", str(out), "--quiet", "--table", "none", "--threads", "1", *extra]
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_run_stops_at_its_time_limit_and_resumes(write_suite: Any, tmp_path: Path, workers: str) -> None:
    path = write_suite(base_suite(data={"dataset": "digits", "n_samples": 8}))
    stopped = tmp_path / "stopped"
    res = _run(path, stopped, "--max-minutes", "0.000001", "--workers", workers, "--shard-size", "4")
    assert res.exit_code == 0, res.output
    assert "stopped at the time limit" in res.output and "run the same command again" in res.output
    manifest = json.loads((stopped / "manifest.json").read_text())
    assert manifest["status"] == "stopped" and manifest["execution"]["units_left"] > 0
    assert manifest["checks"] is None  # no checks on partial rows
    res = _run(path, stopped, "--workers", workers, "--shard-size", "4")
    assert res.exit_code == 0, res.output
    assert json.loads((stopped / "manifest.json").read_text())["status"] == "complete"
    straight = tmp_path / "straight"
    assert _run(path, straight, "--shard-size", "4").exit_code == 0
    assert_same_rows(stopped, raw_rows(straight))


def test_a_nonpositive_time_limit_is_refused(write_suite: Any, tmp_path: Path) -> None:
    out = tmp_path / "never"
    res = _run(write_suite(base_suite()), out, "--max-minutes", "0")
    assert res.exit_code == 2 and "max_minutes" in res.output and not out.exists()
