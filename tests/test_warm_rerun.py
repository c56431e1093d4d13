"""Warm reruns (issue 26 item 2): with every row stored, the checks are reused (keyed by cells, stored rows,
checkpoints and code) instead of recomputed; a new row or another key recomputes them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from robbench.cli import app
from tests.conftest import base_suite

runner = CliRunner()


def _run(path: Path, out: Path, zoo_dir: Path) -> dict[str, Any]:
    res = runner.invoke(
        app, ["run", str(path), "--out", str(out), "--zoo-dir", str(zoo_dir), "--quiet", "--table", "none"]
    )
    assert res.exit_code == 0, res.output
    manifest: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    return manifest


def test_a_warm_rerun_reuses_the_checks_and_new_rows_recompute_them(
    write_suite: Any, tmp_path: Path, zoo_dir: Path
) -> None:
    suite = base_suite(defenses=[{"name": "quantize"}], data={"dataset": "digits", "n_samples": 8})
    out = tmp_path / "res"
    first = _run(write_suite(suite), out, zoo_dir)
    assert first["checks"] and first["checks_key"]
    # mark the stored checks: a reuse keeps the mark, a recomputation drops it
    first["checks"][0]["message"] += " [stored]"
    (out / "manifest.json").write_text(json.dumps(first))
    warm = _run(write_suite(suite), out, zoo_dir)
    assert warm["checks_key"] == first["checks_key"]
    assert warm["checks"][0]["message"].endswith(" [stored]")
    more = _run(write_suite({**suite, "data": {"dataset": "digits", "n_samples": 10}}), out, zoo_dir)
    assert more["checks_key"] != first["checks_key"]
    assert not any(c["message"].endswith(" [stored]") for c in more["checks"])
