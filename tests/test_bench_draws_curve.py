"""benchmarks/bench_draws_curve.py runs end to end on 4 images (not timed), and its curve never rises with more draws."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import yaml

from tests.conftest import run_benchmark

ROOT = Path(__file__).parents[1]


def test_bench_draws_curve_runs_and_never_rises(tmp_path: Path, zoo_dir) -> None:  # type: ignore[no-untyped-def]
    spec = yaml.safe_load((ROOT / "benchmarks" / "suites" / "judge_draws_16.yaml").read_text())
    spec["data"]["n_samples"] = 4
    spec["defenses"] = [{"name": "random_noise", "params": {"sigma": 0.3}}]
    spec["attacks"][1]["params"]["steps"] = 2
    spec["evaluation"]["draws"] = 8
    suite = tmp_path / "small.yaml"
    suite.write_text(yaml.safe_dump(spec))
    res = run_benchmark("bench_draws_curve.py", "--suite", str(suite), "--threads", "1")
    assert "| defense | attack | worst of 1 | worst of 2 | worst of 4 | worst of 8 |" in res.stdout
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("| random_noise |")]
    assert {ln.split(" | ")[1] for ln in lines} == {"clean", "BPDA10-det"}
    for ln in lines:
        vals = [float(c) for c in ln.strip("| ").split(" | ")[2:-1]]
        assert all(a >= b for a, b in pairwise(vals)), ln
