"""Kill safety with real processes: SIGKILL a `robbench run` mid-attack and mid-shard-write, resume,
and get exactly the rows of an uninterrupted run (no duplicate, none lost, none half-written);
torn shards are detected, quarantined and recomputed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from robbench.cli.app import app
from tests.rowtools import (
    RUN_ARGS,
    assert_same_rows,
    keys,
    pgd_suite,
    raw_rows,
    run_cli,
    shard_files,
    sigkill,
    start,
    wait_for,
)

N, SHARD = 16, 4  # RUN_ARGS stores shards of 4 samples
ARGS = RUN_ARGS
TOTAL_SHARDS = 2 * N // SHARD


def _run_args(suite: Path, out: Path) -> list[str]:
    return ["run", str(suite), "--out", str(out), *ARGS]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, zoo_dir: Path) -> Path:
    d = tmp_path_factory.mktemp("kill")
    # slow enough to be killed mid-attack (a 4-sample PGD shard takes ~0.3 s of CPU), fast enough to run often
    pgd_suite(d / "suite.yaml", "kill", N, steps=200, batch_size=2)
    return d


@pytest.fixture(scope="module")
def reference(workdir: Path) -> list[dict[str, Any]]:
    """The rows of one uninterrupted run (same options)."""
    res = run_cli(_run_args(workdir / "suite.yaml", workdir / "ref"), workdir)
    assert res.returncode == 0, res.stderr
    rows = raw_rows(workdir / "ref")
    assert len(rows) == 2 * N and len(set(keys(rows))) == 2 * N
    return rows


def _pgd_cell(out: Path) -> str:
    manifest = json.loads((out / "manifest.json").read_text())
    return next(c["id"] for c in manifest["cells"] if c["attack"] == "PGD")


def _n_shards(out: Path, cell: str | None = None) -> int:
    return sum(1 for p in shard_files(out) if cell is None or p.parent.name == cell)


def _temp_files(out: Path) -> list[Path]:
    return sorted((out / "rows").glob("*/.*.tmp")) if (out / "rows").is_dir() else []


def _resume(workdir: Path, out: Path) -> str:
    res = run_cli(_run_args(workdir / "suite.yaml", out), workdir)
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    return res.stderr


def test_sigkill_during_attacks_then_resume_gives_identical_rows(
    workdir: Path, reference: list[dict[str, Any]]
) -> None:
    out = workdir / "attack-kill"
    suite = workdir / "suite.yaml"
    stored_at_kill = []
    for k, min_pgd_shards in enumerate((1, 3)):
        proc = start(_run_args(suite, out), workdir, f"attack-{k}")
        wait_for(proc, "the manifest", (out / "manifest.json").is_file)
        cell = _pgd_cell(out)
        # the moment a PGD shard lands the run is inside the next unit's attack (0.5 s of PGD, 1 ms of writing)
        wait_for(proc, f"{min_pgd_shards} PGD shards", lambda c=cell, n=min_pgd_shards: _n_shards(out, c) >= n)
        sigkill(proc)
        stored_at_kill.append(_n_shards(out))
        assert json.loads((out / "manifest.json").read_text())["status"] == "running"  # it really died mid-run
    assert stored_at_kill[0] < stored_at_kill[1] < TOTAL_SHARDS, stored_at_kill
    log = _resume(workdir, out)
    done_before = stored_at_kill[-1] * SHARD
    assert f"{2 * N - done_before} rows computed, {done_before} already stored" in log
    assert_same_rows(out, reference)
    assert not _temp_files(out)


def test_sigkill_inside_a_shard_write_then_resume(workdir: Path, reference: list[dict[str, Any]]) -> None:
    """The kill lands between the fsync of a shard's temp file and its rename (ROBBENCH_TEST_SLOW_WRITE)."""
    out = workdir / "write-kill"
    # the 2nd shard of whichever cell comes first sleeps 60 s after fsync, before its rename
    proc = start(_run_args(workdir / "suite.yaml", out), workdir, "write", ROBBENCH_TEST_SLOW_WRITE="60:00000004-*")
    wait_for(proc, "the slow shard's temp file", lambda: any(p.name.startswith(".00000004-") for p in _temp_files(out)))
    sigkill(proc)
    tmp = _temp_files(out)
    assert len(tmp) == 1 and tmp[0].stat().st_size > 0, tmp  # written in full, never renamed
    target = tmp[0].parent / tmp[0].name[1:].rsplit(".", 2)[0]
    assert target.name.startswith("00000004-") and not target.exists()
    assert _n_shards(out) == 1  # only the first shard made it
    _resume(workdir, out)
    assert not _temp_files(out), "the resumed run removes stale temp files"
    assert target.exists()
    assert_same_rows(out, reference)


def test_torn_shards_are_detected_quarantined_and_redone(workdir: Path, reference: list[dict[str, Any]]) -> None:
    out = workdir / "torn"
    shutil.copytree(workdir / "ref", out)
    shards = shard_files(out)
    half, empty = shards[1], shards[-1]
    half.write_bytes(half.read_bytes()[: half.stat().st_size // 2])  # torn by an outside copy / a crash
    empty.write_bytes(b"")
    table = CliRunner().invoke(app, ["table", str(out)])
    assert table.exit_code == 2 and "is corrupt" in table.output and "robbench run" in table.output, table.output
    log = _resume(workdir, out)
    assert f"{2 * SHARD} rows computed, {2 * N - 2 * SHARD} already stored" in log
    corrupt = sorted(p.name for p in (out / "rows" / ".corrupt").iterdir())
    assert corrupt == sorted(f"{p.parent.name}--{p.name}" for p in (half, empty))
    assert_same_rows(out, reference)
    assert CliRunner().invoke(app, ["table", str(out), "--format", "csv"]).exit_code == 0
