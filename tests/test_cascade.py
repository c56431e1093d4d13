"""AutoAttack-style cascade: later attacks run only on points still robust; skipped rows say who broke them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robbench.api import run, table
from robbench.results.store import ResultsDir
from tests.conftest import base_suite


def _suite(cascade: bool) -> dict:  # type: ignore[type-arg]
    return base_suite(
        data={"dataset": "digits", "n_samples": 24},
        threats=[{"norm": "linf", "eps": 0.1}, {"norm": "l2", "eps": 0.8}],
        attacks=[
            {"id": "clean", "name": "clean"},
            {"id": "PGD2", "name": "pgd", "params": {"steps": 2}},
            {"id": "PGD10", "name": "pgd", "params": {"steps": 10}},
            {"id": "PGD10-margin", "name": "pgd", "params": {"steps": 10, "loss": "margin"}},
        ],
        evaluation={"batch_size": 16, "cascade": cascade},
    )


def test_cascade_attacks_only_robust_points_and_equals_the_full_worst_case(
    write_suite, tmp_path: Path, zoo_dir
) -> None:  # type: ignore[no-untyped-def]
    run(write_suite(_suite(False), "full.yaml"), out=tmp_path / "full", quiet=True, threads=1, checks=False)
    report = run(
        write_suite(_suite(True), "cascade.yaml"), out=tmp_path / "cascade", quiet=True, threads=1, checks=False
    )
    assert not report.failures
    full = ResultsDir(tmp_path / "full").read_rows()
    cas = ResultsDir(tmp_path / "cascade").read_rows()
    assert len(cas) == len(full)
    for threat in ("linf-0.1", "l2-0.8"):
        f = full[full.threat == threat].pivot(index="sample_id", columns="attack", values="adv_correct")
        c = cas[cas.threat == threat].set_index(["attack", "sample_id"])
        # the first attack of the group runs on every point, in both modes, with the same rows
        assert c.loc["PGD2"]["broken_by"].isna().all()
        assert (c.loc["PGD2"]["adv_correct"].sort_index() == f["PGD2"].sort_index()).all()
        broken_by_pgd2 = set(f.index[~f["PGD2"]])
        skipped = c.loc["PGD10"]
        assert set(skipped.index[skipped["broken_by"] == "PGD2"]) == broken_by_pgd2 and broken_by_pgd2
        sk = skipped[skipped["broken_by"].notna()]
        assert (~sk["adv_correct"]).all() and sk["error"].isna().all()
        assert (sk["forward_evals"] == 0).all() and (sk["seconds"] == 0).all()
        # attacked points get exactly their non-cascade rows (same seeds)
        attacked = skipped[skipped["broken_by"].isna()]
        assert (attacked["adv_correct"] == f.loc[attacked.index, "PGD10"]).all()
        assert (attacked["forward_evals"] > 0).all()
        # the third attack skips what either earlier one broke, naming the first breaker
        third = c.loc["PGD10-margin"]
        assert set(third["broken_by"].dropna()) <= {"PGD2", "PGD10"}
        # the cascade's last accuracy is the full run's worst case over the three attacks
        worst_full = f[["PGD2", "PGD10", "PGD10-margin"]].all(axis=1).sort_index()
        assert (third["adv_correct"].sort_index() == worst_full).all()
    s_full, s_cas = table(tmp_path / "full"), table(tmp_path / "cascade")
    key = ["defense", "attack", "norm", "eps"]
    wc = s_full[s_full.attack == "worst-case"].set_index(key)["accuracy"]
    wc_c = s_cas[s_cas.attack == "worst-case"].set_index(key)["accuracy"]
    pd.testing.assert_series_equal(wc.sort_index(), wc_c.sort_index())
    # ids: the first attack of a group keeps its cell id, the later ones hash their predecessors
    ids_full = set(full.cell)
    first = set(cas.loc[cas.attack.isin(["clean", "PGD2"]), "cell"])
    later = set(cas.loc[cas.attack.isin(["PGD10", "PGD10-margin"]), "cell"])
    assert first <= ids_full and not (later & ids_full)


def test_cascade_resume_computes_nothing(write_suite, tmp_path: Path, zoo_dir) -> None:  # type: ignore[no-untyped-def]
    suite = _suite(True)
    suite["threats"] = suite["threats"][:1]
    suite["data"]["n_samples"] = 16
    path = write_suite(suite)
    first = run(path, out=tmp_path / "r", quiet=True, threads=1, checks=False)
    again = run(path, out=tmp_path / "r", quiet=True, threads=1, checks=False)
    assert first.rows_written == 4 * 16 and again.rows_written == 0
