"""Runner: rows, resume, determinism, batch-size invariance, PGD sanity on the digits classifier."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd

from robbench.api import run, table
from robbench.results.store import ResultsDir
from tests.conftest import base_suite


def _rows(out: Path) -> pd.DataFrame:
    df = ResultsDir(out).read_rows()
    return df.sort_values(["cell", "sample_id"]).reset_index(drop=True)


def test_run_writes_rows_and_resume_computes_nothing(write_suite, tmp_path: Path, zoo_dir) -> None:  # type: ignore[no-untyped-def]
    path = write_suite(base_suite())
    out = tmp_path / "res"
    first = run(path, out=out, quiet=True)
    assert first.rows_written == 2 * 40 and not first.failures
    df = _rows(out)
    assert len(df) == 80 and df.groupby("cell").size().tolist() == [40, 40]
    assert df["in_ball"].all() and df["error"].isna().all()
    second = run(path, out=out, quiet=True)
    assert second.rows_written == 0 and second.rows_skipped == 80
    manifest = ResultsDir(out).read_manifest()
    assert manifest and manifest["status"] == "complete" and manifest["environment"]["packages"]["torch"]


def test_same_suite_twice_and_other_batch_size_give_identical_rows(write_suite, tmp_path: Path, zoo_dir) -> None:  # type: ignore[no-untyped-def]
    suite = base_suite(threats=[{"norm": "linf", "eps": 0.1}, {"norm": "l2", "eps": 0.5}, {"norm": "l1", "eps": 2}])
    path = write_suite(suite)
    run(path, out=tmp_path / "a", quiet=True)
    run(path, out=tmp_path / "b", quiet=True)
    run(path, out=tmp_path / "c", quiet=True, batch_size=7)
    drop = ["seconds", "peak_mem_mb"]
    a, b, c = (_rows(tmp_path / k).drop(columns=drop) for k in "abc")
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a.drop(columns=["loss_trace"]), c.drop(columns=["loss_trace"]))


def test_pgd_below_clean_and_non_increasing_in_eps(write_suite, tmp_path: Path, zoo_dir) -> None:  # type: ignore[no-untyped-def]
    eps = [0.02, 0.05, 0.1, 0.2]
    suite = base_suite(
        threats=[{"norm": "linf", "eps": e} for e in eps],
        data={"dataset": "digits", "n_samples": 120},
        attacks=[{"id": "clean", "name": "clean"}, {"id": "PGD10", "name": "pgd", "params": {"steps": 10}}],
    )
    out = tmp_path / "res"
    run(write_suite(suite), out=out, quiet=True)
    summary = table(out)
    clean = float(summary.loc[summary.attack == "clean", "accuracy"].iloc[0])
    pgd = summary[summary.attack == "PGD10"].sort_values("eps")["accuracy"].tolist()
    assert clean > 0.9
    assert pgd[0] < clean
    assert all(b <= a for a, b in itertools.pairwise(pgd)), pgd
    assert pgd[-1] < 0.2
