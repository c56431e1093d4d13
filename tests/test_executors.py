"""Executors: a process pool and submitit jobs give the rows of one process; failing units are retried,
then recorded in their rows while the rest continues; reruns submit only missing units; a missing
extra or a Slurm option without submitit is one clear message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from robbench.api import run
from robbench.results.store import ResultsDir
from robbench.run.backends.slurm import _split
from robbench.run.options import ExecutorError, exec_options
from tests.conftest import base_suite

PLUGINS = Path(__file__).parent / "plugins"
VOLATILE = ["seconds", "peak_mem_mb"]


def _rows(out: Path) -> pd.DataFrame:
    df = ResultsDir(out).read_rows()
    return df.sort_values(["cell", "sample_id"]).reset_index(drop=True).drop(columns=VOLATILE)


def _execution(out: Path) -> dict:  # type: ignore[type-arg]
    manifest = ResultsDir(out).read_manifest()
    assert manifest is not None
    return manifest["execution"]  # type: ignore[no-any-return]


def _suite(**overrides):  # type: ignore[no-untyped-def]
    suite = {
        "threats": [{"norm": "linf", "eps": 0.1}, {"norm": "l2", "eps": 0.5}],
        "data": {"dataset": "digits", "n_samples": 24},
    }
    return base_suite(**{**suite, **overrides})


@pytest.fixture(scope="module")
def faulty_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The robbench-faulty test plugin installed into a folder (put it on PYTHONPATH)."""
    target = tmp_path_factory.mktemp("faulty")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(PLUGINS / "robbench_faulty"),
        ],
        check=True,
        capture_output=True,
    )
    return target


def _cli(
    args: list[str], cwd: Path, pythonpath: Path | None = None, prelude: str = ""
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    code = f"{prelude}\nimport sys\nfrom robbench.cli import main\nsys.argv = ['robbench', *{args!r}]\nmain()\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=900)


# ---- options -----------------------------------------------------------------------------------
def test_options_that_do_not_fit_the_executor_are_refused() -> None:
    with pytest.raises(ExecutorError, match="unknown executor 'ray'") as e:
        exec_options(executor="ray")
    assert "local, submitit" in (e.value.hint or "")
    with pytest.raises(ExecutorError, match="--slurm-partition, --gpus-per-job are options of the submitit") as e:
        exec_options(slurm_partition="gpu", gpus_per_job=1)
    assert "--executor submitit" in (e.value.hint or "")
    with pytest.raises(ExecutorError, match="--workers is an option of the local executor"):
        exec_options(executor="submitit", workers=2)
    with pytest.raises(ExecutorError, match="execution.workers"):
        exec_options(workers=0)
    assert exec_options(executor="submitit", shards=3, cluster="local").shards == 3


def test_split_keeps_order_and_balances_samples() -> None:
    keys = [("a", (0, 1, 2, 3)), ("a", (4, 5)), ("b", (0, 1, 2, 3)), ("b", (4, 5)), ("c", (0,))]
    groups = _split(keys, 2)
    assert [k for g in groups for k in g] == keys
    assert [sum(len(k[1]) for k in g) for g in groups] == [6, 7]
    assert _split(keys, 10) == [[k] for k in keys]


HIDE_SUBMITIT = """
import sys
class _Hide:
    def find_spec(self, name, path=None, target=None):
        if name == "submitit" or name.startswith("submitit."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Hide())
"""


def test_missing_submitit_names_the_extra(write_suite, tmp_path: Path, zoo_dir) -> None:  # type: ignore[no-untyped-def]
    path = write_suite(_suite())
    out = tmp_path / "res"
    res = _cli(
        ["run", str(path), "--out", str(out), "--executor", "submitit", "--cluster", "local"],
        tmp_path,
        prelude=HIDE_SUBMITIT,
    )
    assert res.returncode == 2, res.stderr
    assert "executor 'submitit' needs the 'submitit' package" in res.stderr
    assert "pip install 'robbench[submitit]'" in res.stderr
    res = _cli(["run", str(path), "--out", str(out), "--slurm-partition", "gpu"], tmp_path, prelude=HIDE_SUBMITIT)
    assert res.returncode == 2, res.stderr
    assert "--slurm-partition is an option of the submitit (Slurm) executor" in res.stderr
    assert "--executor submitit" in res.stderr and "pip install 'robbench[submitit]'" in res.stderr
    assert not out.exists()  # refused before anything was written


def test_submitit_without_slurm_is_refused_unless_local_jobs_are_asked_for(
    write_suite,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))  # no srun: no Slurm here
    with pytest.raises(ExecutorError, match="found no Slurm cluster") as e:
        exec_options(executor="submitit", slurm_partition="gpu")
    assert "--cluster local" in (e.value.hint or "")
    assert exec_options(executor="submitit", cluster="local").cluster == "local"
    path, out = write_suite(_suite()), tmp_path / "res"
    res = _cli(["run", str(path), "--out", str(out), "--executor", "submitit", "--shards", "2"], tmp_path)
    assert res.returncode == 2 and "found no Slurm cluster here" in res.stderr, res.stderr
    assert not out.exists()  # refused before anything was written
    srun = bin_dir / "srun"  # a Slurm installation, as submitit detects one
    srun.write_text("#!/bin/sh\nexit 1\n")
    srun.chmod(0o755)
    assert exec_options(executor="submitit", slurm_partition="gpu").slurm_partition == "gpu"


# ---- the same rows, however split ------------------------------------------------------------------
def test_process_pool_gives_the_rows_of_one_process_and_keeps_cascade_order(
    write_suite, tmp_path: Path, zoo_dir
) -> None:  # type: ignore[no-untyped-def]
    # cascade: PGD5 reads the stored PGD2 rows of its samples, so its units must wait for all of PGD2's
    path = write_suite(
        _suite(
            attacks=[
                {"id": "clean", "name": "clean"},
                {"id": "PGD2", "name": "pgd", "params": {"steps": 2}},
                {"id": "PGD5", "name": "pgd", "params": {"steps": 5}},
            ],
            evaluation={"batch_size": 16, "cascade": True},
        )
    )
    run(path, out=tmp_path / "one", quiet=True, shard_size=8)
    rep = run(path, out=tmp_path / "pool", quiet=True, shard_size=8, executor="local", workers=2)
    assert rep.rows_written == 5 * 24 and not rep.failures
    one, pool = _rows(tmp_path / "one"), _rows(tmp_path / "pool")
    pd.testing.assert_frame_equal(one, pool, check_exact=True)
    assert pool["error"].isna().all()
    ex = _execution(tmp_path / "pool")
    assert ex["backend"] == "local-pool" and ex["workers"] == 2 and ex["units_submitted"] == 15
    assert ex["rounds"] == [3, 6, 6]  # clean, PGD2, PGD5: one stage each


def test_a_process_pool_computes_the_checks_beside_the_units_and_gets_those_of_one_process(  # type: ignore[no-untyped-def]
    write_suite, tmp_path: Path, zoo_dir
) -> None:
    # a stochastic defense attacked without EoT (a randomness flag) beside the undefended classifier
    path = write_suite(
        _suite(
            defenses=[{"name": "none"}, {"name": "random_noise", "params": {"sigma": 0.05}}],
            attacks=[{"id": "PGD2", "name": "pgd", "params": {"steps": 2}}],
            data={"dataset": "digits", "n_samples": 16},
        )
    )
    run(path, out=tmp_path / "one", quiet=True, shard_size=8)
    run(path, out=tmp_path / "pool", quiet=True, shard_size=8, executor="local", workers=2)
    assert _execution(tmp_path / "one")["checks_in_workers"] == []
    assert _execution(tmp_path / "pool")["checks_in_workers"] == ["none", "random_noise"]
    one, pool = (ResultsDir(tmp_path / d).read_manifest()["checks"] for d in ("one", "pool"))  # type: ignore[index]
    assert [(c["check"], c["status"], c["subject"]) for c in one] == [
        (c["check"], c["status"], c["subject"]) for c in pool
    ]
    assert any(c["check"] == "randomness" and c["status"] == "flag" and c["subject"] == "random_noise" for c in pool)
    assert any(c["check"] == "large-eps" for c in pool)  # the computed large-eps attack ran in a worker
    for a, b in zip(one, pool):  # the numbers too (the coordinator may use more threads: last bits may differ)
        for k, v in a.items():
            if isinstance(v, float):
                assert b[k] == pytest.approx(v, rel=1e-4, abs=1e-6), (a, b)


def test_submitit_local_jobs_give_the_same_rows_and_rerun_submits_only_missing(
    write_suite, tmp_path: Path, zoo_dir
) -> None:  # type: ignore[no-untyped-def]
    path = write_suite(_suite())
    run(path, out=tmp_path / "one", quiet=True, shard_size=8)
    out = tmp_path / "jobs"
    rep = run(path, out=out, quiet=True, shard_size=8, executor="submitit", cluster="local", shards=2, poll_s=0.5)
    assert rep.rows_written == 72 and not rep.failures
    ex = _execution(out)
    assert ex["backend"] == "submitit" and len(ex["job_ids"]) == 2 and ex["units_submitted"] == 9
    pd.testing.assert_frame_equal(_rows(tmp_path / "one"), _rows(out), check_exact=True)
    # a crash lost two shards: the rerun submits exactly those two units
    lost = ResultsDir(out).shard_paths()[2:4]
    for p in lost:
        p.unlink()
    rep = run(path, out=out, quiet=True, shard_size=8, executor="submitit", cluster="local", shards=2, poll_s=0.5)
    assert rep.rows_written == 16 and rep.rows_skipped == 72 - 16
    assert _execution(out)["units_submitted"] == 2
    pd.testing.assert_frame_equal(_rows(tmp_path / "one"), _rows(out), check_exact=True)


# ---- failures ------------------------------------------------------------------------------------------
def _faulty_suite(params: dict) -> dict:  # type: ignore[type-arg]
    # digits test labels 0..39: label 3 sits at positions 3, 17, 21, 33 -> units 0, 2, 4 of five (8 each)
    return base_suite(
        attacks=[{"id": "clean", "name": "clean"}, {"id": "faulty", "name": "test_faulty", "params": params}],
        evaluation={"batch_size": 8},
    )


def test_a_failing_unit_is_retried_then_recorded_and_the_rest_continues(
    write_suite,
    tmp_path: Path,
    zoo_dir,  # type: ignore[no-untyped-def]
    faulty_plugin: Path,
) -> None:
    path = write_suite(_faulty_suite({"fail_labels": [3]}))
    out = tmp_path / "res"
    res = _cli(
        ["run", str(path), "--out", str(out), "--quiet", "--shard-size", "8", "--table", "csv"], tmp_path, faulty_plugin
    )
    assert res.returncode == 3, res.stderr
    assert "unit failed after 3 attempts: RuntimeError: faulty attack" in res.stderr
    df = ResultsDir(out).read_rows()
    assert len(df) == 80
    bad = df[df["error"].notna()]
    assert (bad["attack"] == "faulty").all() and len(bad) == 24
    assert sorted(bad["sample_index"].tolist()) == list(range(0, 8)) + list(range(16, 24)) + list(range(32, 40))
    assert not bad["adv_correct"].any() and (bad["adv_correct_draws"].map(len) == 0).all()
    good = df[df["error"].isna()]
    assert len(good) == 56 and good["in_ball"].all()
    ex = _execution(out)
    assert ex["failed_units"] == 3 and ex["retries"] == 6 and ex["rounds"] == [10, 3, 3]
    assert json.loads((out / "manifest.json").read_text())["status"] == "failed"
    assert "none,faulty" in res.stdout  # the table is still printed
    # the rerun retries exactly the failed units (they fail again) and keeps one row per key
    res = _cli(
        ["run", str(path), "--out", str(out), "--quiet", "--shard-size", "8", "--max-retries", "0", "--table", "none"],
        tmp_path,
        faulty_plugin,
    )
    assert res.returncode == 3
    ex = _execution(out)
    assert ex["rounds"] == [3] and ex["failed_units"] == 3
    df = ResultsDir(out).read_rows()
    assert len(df) == 80 and df["error"].str.contains("after 1 attempt:").sum() == 24


def test_a_transient_failure_is_retried_and_leaves_no_trace(
    write_suite,
    tmp_path: Path,
    zoo_dir,  # type: ignore[no-untyped-def]
    faulty_plugin: Path,
) -> None:
    path = write_suite(_faulty_suite({"fail_labels": [3], "fail_once_dir": str(tmp_path / "markers")}))
    out = tmp_path / "res"
    res = _cli(
        ["run", str(path), "--out", str(out), "--quiet", "--shard-size", "8", "--table", "none"],
        tmp_path,
        faulty_plugin,
    )
    assert res.returncode == 0, res.stderr
    df = ResultsDir(out).read_rows()
    assert len(df) == 80 and df["error"].isna().all()
    ex = _execution(out)
    assert ex["retries"] == 3 and ex["failed_units"] == 0


def test_pool_workers_see_the_environment_of_the_run_not_of_their_fork_server(
    write_suite,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    zoo_dir,
    faulty_plugin: Path,
) -> None:
    # the fork server starts before the variable is set (as the CLI starts it before planning, and as an
    # earlier run of the same process leaves it); the workers it forks must still see the run's environment
    path = write_suite(_faulty_suite({"env_probe": "ROBBENCH_TEST_PROBE", "probe_dir": str(tmp_path / "probe")}))
    code = (
        f"import os, time\nfrom robbench.run.backends.pool import prestart_workers\nfrom robbench.api import run\n"
        f"if __name__ == '__main__':\n    prestart_workers()\n    time.sleep(1)\n"
        f"    os.environ['ROBBENCH_TEST_PROBE'] = 'set after the server started'\n"
        f"    run({str(path)!r}, out={str(tmp_path / 'res')!r}, quiet=True, shard_size=8, workers=2, threads=1)\n"
        f"    print(os.getpid())\n"
    )
    script = tmp_path / "probe_run.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(faulty_plugin)}
    env.pop("ROBBENCH_TEST_PROBE", None)
    res = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600
    )
    assert res.returncode == 0, res.stderr
    probes = {f.name: f.read_text() for f in (tmp_path / "probe").iterdir()}
    assert probes and set(probes.values()) == {"set after the server started"}, probes
    assert f"pid-{res.stdout.strip()}" not in probes  # the units ran in the workers, not in the script


def test_a_dead_worker_is_replaced_and_only_its_unit_is_charged(
    write_suite,
    tmp_path: Path,
    zoo_dir,  # type: ignore[no-untyped-def]
    faulty_plugin: Path,
) -> None:
    path = write_suite(_faulty_suite({"crash_labels": [3]}))
    out = tmp_path / "res"
    res = _cli(
        [
            "run",
            str(path),
            "--out",
            str(out),
            "--quiet",
            "--shard-size",
            "8",
            "--workers",
            "2",
            "--max-retries",
            "1",
            "--table",
            "none",
        ],
        tmp_path,
        faulty_plugin,
    )
    assert res.returncode == 3, res.stderr
    df = ResultsDir(out).read_rows()
    bad = df[df["error"].notna()]
    assert len(df) == 80 and len(bad) == 24
    assert bad["error"].str.contains("unit failed after 2 attempts: worker process died \\(exit code 17\\)").all()
    ex = _execution(out)
    assert ex["failed_units"] == 3 and ex["retries"] == 3


def test_a_fatal_error_in_a_worker_stops_the_run_with_its_message(
    write_suite,
    tmp_path: Path,
    zoo_dir,  # type: ignore[no-untyped-def]
    faulty_plugin: Path,
) -> None:
    path = write_suite(_faulty_suite({"fatal_labels": [3]}))
    out = tmp_path / "res"
    res = _cli(
        ["run", str(path), "--out", str(out), "--quiet", "--shard-size", "8", "--workers", "2", "--table", "none"],
        tmp_path,
        faulty_plugin,
    )
    assert res.returncode == 2, res.stderr
    assert "faulty attack: the data went away" in res.stderr and "put the data back" in res.stderr
    manifest = ResultsDir(out).read_manifest() or {}
    assert manifest["status"] == "aborted"
    df = ResultsDir(out).read_rows()
    assert df["error"].isna().all()  # what finished is kept; no failure rows for a fatal error


def test_submitit_jobs_retry_a_failing_unit_then_record_it_and_finish_the_rest(
    write_suite,
    tmp_path: Path,
    zoo_dir,  # type: ignore[no-untyped-def]
    faulty_plugin: Path,
) -> None:
    path = write_suite(_faulty_suite({"fail_labels": [3]}))
    out = tmp_path / "res"
    res = _cli(
        [
            "run",
            str(path),
            "--out",
            str(out),
            "--quiet",
            "--shard-size",
            "8",
            "--executor",
            "submitit",
            "--cluster",
            "local",
            "--shards",
            "2",
            "--max-retries",
            "1",
            "--table",
            "none",
        ],
        tmp_path,
        faulty_plugin,
    )
    assert res.returncode == 3, res.stderr
    assert "unit failed after 2 attempts: RuntimeError: faulty attack" in res.stderr
    df = ResultsDir(out).read_rows()
    bad = df[df["error"].notna()]
    assert len(df) == 80 and len(bad) == 24 and (bad["attack"] == "faulty").all()
    assert sorted(bad["sample_index"].tolist()) == list(range(0, 8)) + list(range(16, 24)) + list(range(32, 40))
    assert df[df["error"].isna()]["in_ball"].all()
    ex = _execution(out)
    # round 1: all ten units in 2 jobs; round 2: the three failed units resubmitted once; then recorded
    assert ex["backend"] == "submitit" and ex["rounds"] == [10, 3] and ex["retries"] == 3 and ex["failed_units"] == 3
    assert len(ex["job_ids"]) == 2 + 2


@pytest.mark.slow
def test_a_crashing_submitit_job_charges_only_the_unit_it_died_on(
    write_suite,
    tmp_path: Path,
    zoo_dir,  # type: ignore[no-untyped-def]
    faulty_plugin: Path,
) -> None:
    path = write_suite(_faulty_suite({"crash_labels": [3]}))
    out = tmp_path / "res"
    res = _cli(
        [
            "run",
            str(path),
            "--out",
            str(out),
            "--quiet",
            "--shard-size",
            "8",
            "--executor",
            "submitit",
            "--cluster",
            "local",
            "--shards",
            "1",
            "--max-retries",
            "0",
            "--table",
            "none",
        ],
        tmp_path,
        faulty_plugin,
    )
    assert res.returncode == 3, res.stderr
    df = ResultsDir(out).read_rows()
    bad = df[df["error"].notna()]
    assert len(df) == 80 and len(bad) == 24 and bad["error"].str.contains("job .* failed").all()
    # one job ran all ten units; each crash charged one unit and resubmitted the rest free
    assert _execution(out)["failed_units"] == 3
