"""Two real `robbench run` processes on one results directory: the second is refused while the first
holds the lock (exit 2, one clear line, nothing touched); rows are never interleaved or corrupted.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robbench.cli.app import app
from tests.rowtools import RUN_ARGS, keys, pgd_suite, raw_rows, run_cli, shard_files, start, wait_for

N = 16
ARGS = RUN_ARGS


@pytest.fixture
def suite(tmp_path: Path, zoo_dir: Path) -> Path:
    return pgd_suite(tmp_path / "suite.yaml", "conc", N, steps=20)


def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


def _assert_intact(out: Path) -> None:
    rows = raw_rows(out)  # every shard readable
    k = keys(rows)
    assert len(k) == len(set(k)) == 2 * N, (len(k), len(set(k)))
    assert all(r["error"] is None for r in rows)
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_second_run_is_refused_while_the_first_holds_the_lock(suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    a = start(["run", str(suite), "--out", str(out), *ARGS], tmp_path, "a")
    try:
        wait_for(a, "a stored shard", lambda: bool(shard_files(out)))
        a.send_signal(signal.SIGSTOP)  # frozen while holding the lock: the refusal cannot race the end of A
        held = shard_files(out)
        for extra in ([], ["--fresh"]):
            b = run_cli(["run", str(suite), "--out", str(out), *ARGS, *extra], tmp_path)
            assert b.returncode == 2, b.stderr
            lines = _error_lines(b.stderr)
            assert len(lines) == 1 and re.search(rf"in use by pid {a.pid}\b", lines[0]), b.stderr
            assert "fix:" in b.stderr and "--out" in b.stderr
            assert shard_files(out) == held, "the refused run must not touch the stored rows (not even --fresh)"
        # readers are fine meanwhile: they see whole shards only
        partial = CliRunner().invoke(app, ["table", str(out), "--format", "csv"])
        assert partial.exit_code == 0, partial.output
    finally:
        a.send_signal(signal.SIGCONT)
    assert a.wait(timeout=600) == 0, (tmp_path / "a.err").read_text()
    _assert_intact(out)
    again = run_cli(["run", str(suite), "--out", str(out), *ARGS], tmp_path)
    assert again.returncode == 0 and f"0 rows computed, {2 * N} already stored" in again.stderr, again.stderr


def test_two_runs_started_together_never_corrupt_rows(suite: Path, tmp_path: Path) -> None:
    """Whichever gets the lock computes everything; the other is refused or (if later) resumes with nothing to do."""
    out = tmp_path / "res"
    procs = [start(["run", str(suite), "--out", str(out), *ARGS], tmp_path, name) for name in ("p", "q")]
    codes = [p.wait(timeout=600) for p in procs]
    errs = [(tmp_path / f"{n}.err").read_text() for n in ("p", "q")]
    assert sorted(codes) in ([0, 0], [0, 2]), (codes, errs)
    computed = [int(m.group(1)) for e in errs for m in [re.search(r"(\d+) rows computed", e)] if m]
    assert sum(computed) == 2 * N, errs  # no row computed twice
    for code, e in zip(codes, errs, strict=True):
        if code == 2:
            assert len(_error_lines(e)) == 1 and "is in use by" in e, e
    _assert_intact(out)


def test_a_different_suite_cannot_write_into_the_directory(suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    assert run_cli(["run", str(suite), "--out", str(out), *ARGS], tmp_path).returncode == 0
    before = {p: p.read_bytes() for p in shard_files(out)}
    other = pgd_suite(tmp_path / "other.yaml", "other", N, steps=20)
    res = CliRunner().invoke(app, ["run", str(other), "--out", str(out), "--quiet"])
    assert res.exit_code == 2 and "holds results of suite 'conc'" in res.output, res.output
    assert {p: p.read_bytes() for p in shard_files(out)} == before
