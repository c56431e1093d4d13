"""Helpers for the tests that drive real `robbench` processes: raw stored rows, waiting, killing."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from robbench.results.schema import SCHEMA
from tests.conftest import base_suite, cli_cmd, cli_env

#: columns that measure time or memory and legitimately differ between two runs
TIMING = ("seconds", "peak_mem_mb")
#: options of the subprocess runs: quiet, no table, one thread (the same floats in every process),
#: shards of 4 samples (many resume points)
RUN_ARGS = ["--quiet", "--table", "none", "--threads", "1", "--shard-size", "4"]


def pgd_suite(path: Path, name: str, n: int, steps: int, batch_size: int = 4) -> Path:
    """Write a digits suite (clean + PGD with ``steps`` steps on ``n`` samples) to ``path``."""
    import yaml

    suite = base_suite(
        name=name,
        data={"dataset": "digits", "split": "test", "n_samples": n},
        attacks=[{"id": "clean", "name": "clean"}, {"id": "PGD", "name": "pgd", "params": {"steps": steps}}],
        evaluation={"batch_size": batch_size},
    )
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def shard_files(out: Path) -> list[Path]:
    """Every stored shard (not temp files, not quarantined ones)."""
    return sorted(
        p
        for p in (out / "rows").glob("*/*.parquet")
        if not p.name.startswith(".") and not p.parent.name.startswith(".")
    )


def raw_rows(out: Path) -> list[dict[str, Any]]:
    """All rows of all shards as plain Python values, read file by file with no deduplication."""
    tables = [pq.read_table(p, schema=SCHEMA) for p in shard_files(out)]  # columns added later read as null
    return pa.concat_tables(tables).to_pylist() if tables else []


def keys(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["cell"], r["sample_id"]) for r in rows]


def comparable(rows: list[dict[str, Any]], drop: tuple[str, ...] = TIMING) -> list[dict[str, Any]]:
    """Rows sorted by key with the timing columns removed: equal lists mean equal results."""
    return sorted(
        ({k: v for k, v in r.items() if k not in drop} for r in rows), key=lambda r: (r["cell"], r["sample_id"])
    )


def assert_same_rows(out: Path, reference: list[dict[str, Any]], drop: tuple[str, ...] = TIMING) -> None:
    """No duplicate key, no missing or extra key, and every column equal to ``reference`` exactly."""
    rows = raw_rows(out)
    k = keys(rows)
    assert len(k) == len(set(k)), f"duplicate rows: {len(k) - len(set(k))}"
    assert sorted(k) == sorted(keys(reference)), "rows lost or extra"
    got, want = comparable(rows, drop), comparable(reference, drop)
    for g, w in zip(got, want, strict=True):
        assert g == w, {c: (g[c], w[c]) for c in g if g[c] != w[c]}


def start(args: list[str], cwd: Path, log: str, pythonpath: Path | None = None, **env: str) -> subprocess.Popen[bytes]:
    """Start ``python -m robbench.cli ARGS`` with stdout/stderr to files in ``cwd``."""
    with open(cwd / f"{log}.out", "wb") as so, open(cwd / f"{log}.err", "wb") as se:
        return subprocess.Popen(cli_cmd(*args), cwd=cwd, env=cli_env(pythonpath, **env), stdout=so, stderr=se)


def run_cli(
    args: list[str], cwd: Path, pythonpath: Path | None = None, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m robbench.cli ARGS`` to completion, capturing its output."""
    return subprocess.run(
        cli_cmd(*args), cwd=cwd, env=cli_env(pythonpath, **env), capture_output=True, text=True, timeout=timeout
    )


def output(cwd: Path, log: str) -> str:
    return (cwd / f"{log}.out").read_text() + (cwd / f"{log}.err").read_text()


def wait_for(proc: subprocess.Popen[bytes], what: str, cond: Callable[[], bool], timeout: float = 120) -> None:
    """Poll ``cond`` every 5 ms; fail if the process ends first or the time runs out."""
    end = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def sigkill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL and reap; asserts the kill (not a normal exit) ended the process."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the run was not killed mid-run (exit {proc.returncode})"
