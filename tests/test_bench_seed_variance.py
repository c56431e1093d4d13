"""benchmarks/bench_seed_variance.py runs end to end on 4 images and 2 seeds (not timed), and its pooled column is
what it claims: a sample counts as robust over the seeds only if it is robust under every one of them."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import run_benchmark

ROOT = Path(__file__).parents[1]


def test_bench_seed_variance_runs_and_pools_worst_over_seeds(tmp_path: Path, zoo_dir) -> None:  # type: ignore[no-untyped-def]
    spec = yaml.safe_load((ROOT / "benchmarks" / "suites" / "seed_variance.yaml").read_text())
    spec["data"]["n_samples"] = 4
    spec["defenses"] = [d for d in spec["defenses"] if d["name"] in ("none", "random_noise")]
    spec["attacks"] = [a for a in spec["attacks"] if a["id"] in ("clean", "PGD10", "PGD10-EoT4-full")]
    for a in spec["attacks"]:
        if "params" in a:
            a["params"]["steps"] = 2
        if "defenses" in a:
            a["defenses"] = [d for d in a["defenses"] if d in ("none", "random_noise")]
    suite = tmp_path / "small.yaml"
    suite.write_text(yaml.safe_dump(spec))
    res = run_benchmark(
        "bench_seed_variance.py",
        "--suite",
        str(suite),
        "--seeds",
        "0",
        "1",
        "--threads",
        "1",
        "--out",
        str(tmp_path / "runs"),
    )
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("| ") and "---" not in ln and "seed 0" not in ln]
    names = {ln.split(" | ")[0][2:] for ln in lines}
    assert {"random_noise / PGD10-EoT4-full", "none / PGD10", "random_noise"} <= names, names
    for ln in lines:
        cols = [c.strip() for c in ln.strip("| ").split(" | ")]
        per_seed, spread, worst = [float(c) for c in cols[1:3]], float(cols[3]), float(cols[4])
        assert worst <= min(per_seed) and abs(spread - (max(per_seed) - min(per_seed))) <= 0.11, ln
    assert (tmp_path / "runs" / "seed-1" / "results" / "manifest.json").exists()
