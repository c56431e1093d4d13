"""A full results disk, for real: a tiny tmpfs filled up under a running `robbench run` (needs root to
mount; skipped otherwise), and a file-size limit (RLIMIT_FSIZE, any user). Either way: exit 2 with one
clear message naming the folder, no temp file left, stored shards intact, and a resume after freeing
space gives exactly the rows of an uninterrupted run.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import cli_cmd, cli_env
from tests.rowtools import RUN_ARGS, assert_same_rows, pgd_suite, raw_rows, run_cli, shard_files, start, wait_for

N = 16
ARGS = RUN_ARGS


@pytest.fixture
def suite(tmp_path: Path, zoo_dir: Path) -> Path:
    return pgd_suite(tmp_path / "suite.yaml", "full", N, steps=40)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root only): {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path) -> Path:
    """Write zeros until the disk refuses (ENOSPC)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def _one_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_disk_fills_up_mid_run_then_resume(suite: Path, tmp_path: Path, tiny_disk: Path) -> None:
    ref = run_cli(["run", str(suite), "--out", str(tmp_path / "ref"), *ARGS], tmp_path)
    assert ref.returncode == 0, ref.stderr
    out = tiny_disk / "res"
    proc = start(["run", str(suite), "--out", str(out), *ARGS], tmp_path, "full")
    wait_for(proc, "two stored shards", lambda: len(shard_files(out)) >= 2)
    proc.send_signal(signal.SIGSTOP)
    filler = _fill(tiny_disk)  # the disk is now full under the frozen run
    kept = {p: p.read_bytes() for p in shard_files(out)}
    proc.send_signal(signal.SIGCONT)
    assert proc.wait(timeout=600) == 2
    line = _one_error((tmp_path / "full.err").read_text())
    assert "no space left on the disk holding" in line and str(out) in line, line
    assert "free disk space" in (tmp_path / "full.err").read_text()
    assert not list(out.rglob("*.tmp")), "a failed write leaves no temp file"
    assert all(p.read_bytes() == data for p, data in kept.items()), "stored shards are untouched"
    assert len(kept) < 2 * N // 4
    filler.unlink()
    res = run_cli(["run", str(suite), "--out", str(out), *ARGS], tmp_path)
    assert res.returncode == 0, res.stderr
    assert_same_rows(out, raw_rows(tmp_path / "ref"))
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def _limited(limit: int) -> None:  # pragma: no cover - runs in the child before exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_file_size_limit_is_a_clear_error(suite: Path, tmp_path: Path) -> None:
    """RLIMIT_FSIZE: the manifest write fails with EFBIG at the start; nothing half-written; then it runs."""
    out = tmp_path / "res"
    res = subprocess.run(
        cli_cmd("run", str(suite), "--out", str(out), *ARGS),
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        preexec_fn=lambda: _limited(1024),
        timeout=300,
    )
    assert res.returncode == 2, res.stderr
    line = _one_error(res.stderr)
    assert "file size limit exceeded on the disk holding" in line and str(out) in line, line
    assert sorted(p.name for p in out.iterdir()) == [".lock"], "no manifest, no temp file, no rows"
    res = run_cli(["run", str(suite), "--out", str(out), *ARGS], tmp_path)
    assert res.returncode == 0, res.stderr
    assert len(raw_rows(out)) == 2 * N
