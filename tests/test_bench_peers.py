"""benchmarks/bench_peers.py runs end to end on 4 images (not timed): the peer comparison cannot rot."""

from __future__ import annotations

import pytest

from tests.conftest import run_benchmark


def test_bench_peers_runs_on_four_images() -> None:
    pytest.importorskip("art")
    pytest.importorskip("foolbox")
    args = ["--n", "4", "--n-cifar", "4", "--n-eot", "2", "--reps", "1", "--eot-reps", "1", "--steps", "2"]
    args += ["--eot", "2", "--draws", "2", "--threads", "1"]
    res = run_benchmark("bench_peers.py", *args)
    for tool in ("robbench", "art", "foolbox"):
        assert tool in res.stdout.lower(), tool
    assert "| setting | attack | tool |" in res.stdout
