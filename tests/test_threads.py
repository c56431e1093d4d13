"""Thread choice without ``--threads`` (issue 17 item 8): the cores actually free, shared among the
workers, at least one each; said on stderr and recorded in the manifest; ``--threads`` overrides."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from robbench.run.threads import choose_threads, usable_cores
from tests.conftest import base_suite, cli_cmd, cli_env


@pytest.mark.parametrize(
    ("cores", "load", "workers", "expected"),
    [
        (2, 0.0, 1, 2),  # idle: every core
        (2, 1.9, 1, 1),  # one core busy elsewhere
        (2, 3.5, 1, 1),  # oversubscribed already: never fewer than one
        (2, 0.2, 2, 1),  # two workers share two cores
        (16, 4.2, 3, 4),  # 12 free among 3 workers
        (16, 40.0, 4, 1),
        (8, None, 2, 4),  # no load average on this OS: all cores
    ],
)
def test_threads_follow_the_free_cores(cores: int, load: float | None, workers: int, expected: int) -> None:
    choice = choose_threads(None, workers, cores=cores, load=load)
    assert choice.threads == expected and not choice.explicit
    assert "--threads N overrides" in choice.describe()


def test_busy_cores_are_sampled_now_not_averaged_over_a_minute() -> None:
    """A busy loop started a moment ago counts at once (the 1-minute load average would still read ~0 for it)."""
    import sys
    import time

    from robbench.run.threads import busy_cores

    assert 0.0 <= (busy_cores(0.1) or 0.0) <= usable_cores() + 1e-6
    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = busy_cores(0.5)
    finally:
        loop.kill()
        loop.wait()
    assert busy is not None and busy >= 0.7, busy


def test_an_explicit_thread_count_wins_over_the_load() -> None:
    choice = choose_threads(6, 1, cores=2, load=5.0)
    assert choice.threads == 6 and choice.explicit and "(--threads)" in choice.describe()


@pytest.mark.parametrize("threads", [None, "1"])
def test_a_run_says_and_records_its_thread_choice(tmp_path: Path, zoo_dir: Path, threads: str | None) -> None:
    suite = tmp_path / "s.yaml"
    doc = base_suite(attacks=[{"id": "clean", "name": "clean"}])
    doc["data"]["n_samples"] = 4
    suite.write_text(yaml.safe_dump(doc))
    args = ["run", str(suite), "--out", str(tmp_path / "out"), "--table", "none"]
    args += ["--threads", threads] if threads else []
    res = subprocess.run(cli_cmd(*args), capture_output=True, text=True, env=cli_env(), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    line = next(x for x in res.stderr.splitlines() if x.startswith("torch threads:"))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["execution"]["threads_choice"] == line
    assert 1 <= manifest["threads"] <= max(usable_cores(), int(threads or 1))
    assert ("(--threads)" in line) == bool(threads)
