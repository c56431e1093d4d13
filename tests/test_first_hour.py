"""First-hour bugs (issue 17, items 1-3, 6, 7): hostile suite files and --out values end in one clear
message, exit 2, and nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env


def _robbench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "robbench.cli", *args], capture_output=True, text=True, cwd=cwd, env=cli_env()
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"name: caf\xe9\n", "is not UTF-8 text"),
        (b"name: t\nx: " + b"[" * 50000 + b"]" * 50000 + b"\n", "nested 50000 deep"),
        (b"name: t\nx:\n" + b"".join(b" " * i + b"-\n" for i in range(1, 1000)), "nested too deeply"),
        (
            b"name: t\ndata: {indices: [" + b", ".join(b"%d" % i for i in range(300_000)) + b"]}\n",
            "MB; a suite is a few kB",
        ),
    ],
    ids=["latin-1", "deep-flow", "deep-block", "huge"],
)
def test_hostile_suite_files_are_refused_cleanly(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    for cmd in ("validate", "run"):
        res = (
            _robbench(cmd, str(path), "--out", str(tmp_path / "out"), cwd=tmp_path)
            if cmd == "run"
            else _robbench(cmd, str(path), cwd=tmp_path)
        )
        assert res.returncode == 2, res.stderr[-2000:]
        assert message in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


def test_empty_out_is_refused_and_the_current_directory_untouched(tmp_path: Path) -> None:
    suite = Path(__file__).parents[1] / "suites" / "quickstart.yaml"
    res = _robbench("run", str(suite), "--out", "", cwd=tmp_path)
    assert res.returncode == 2 and "--out is empty" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_out_is_one_message_not_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    suite = Path(__file__).parents[1] / "suites" / "quickstart.yaml"
    res = _robbench("run", str(suite), "--out", str(blocker / "sub"), cwd=tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    assert ("not writable" in res.stderr or "cannot write" in res.stderr) and "Traceback" not in res.stderr
    assert blocker.read_text() == "not a folder"
