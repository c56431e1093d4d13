"""benchmarks/bench_peers.py runs end to end on 4 images (not timed): the peer comparison cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env

ROOT = Path(__file__).parents[1]


def test_bench_peers_runs_on_four_images() -> None:
    pytest.importorskip("art")
    pytest.importorskip("foolbox")
    args = ["--n", "4", "--n-cifar", "4", "--n-eot", "2", "--reps", "1", "--eot-reps", "1", "--steps", "2"]
    args += ["--eot", "2", "--draws", "2", "--threads", "1"]
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_peers.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=cli_env(OMP_NUM_THREADS="1"),
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for tool in ("robbench", "art", "foolbox"):
        assert tool in res.stdout.lower(), tool
    assert "| setting | attack | tool |" in res.stdout
