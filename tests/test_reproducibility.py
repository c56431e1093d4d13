"""Reproducibility on CPU, with real processes and a stochastic defense (the test plugin's test_gauss):

- the same suite twice gives identical rows, in separate processes with different PYTHONHASHSEEDs;
- another batch size changes no decision column, and float diagnostics only at round-off;
- the manifest records everything needed to rerun, and its ``rerun`` command, given only the
  results directory, reproduces the rows exactly;
- ``--deterministic`` is recorded, changes no CPU row, and is switched off again after the run.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from robbench.cli.app import app
from tests.conftest import base_suite
from tests.rowtools import TIMING, assert_same_rows, comparable, keys, raw_rows, run_cli

N = 12
#: diagnostics that BLAS kernels (which block by batch size) may change in the last bits
FLOAT_DIAGNOSTICS = ("pert_norm", "pert_linf", "loss_trace")
STOCHASTIC = base_suite(
    name="repro",
    seed=7,
    data={"dataset": "digits", "split": "test", "n_samples": N},
    threats=[{"norm": "linf", "eps": 0.1}, {"norm": "l2", "eps": 0.5}],
    defenses=[{"name": "none"}, {"name": "test_gauss", "id": "gauss", "params": {"sigma": 0.2}}],
    attacks=[
        {"id": "clean", "name": "clean"},
        {"id": "PGD-EoT", "name": "pgd", "params": {"steps": 4}, "eot": 2},
        {"id": "PGD-det", "name": "pgd", "params": {"steps": 4}, "randomness": "det"},
    ],
    evaluation={"batch_size": 5, "draws": 3, "overrides": ["few-draws"]},
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, testplugin_path: Path, zoo_dir: Path) -> Path:
    """Three runs of the stochastic suite: a, b (another process and hash seed), c (batch size 2)."""
    d = tmp_path_factory.mktemp("repro")
    (d / "suite.yaml").write_text(yaml.safe_dump(STOCHASTIC, sort_keys=False))
    for name, hashseed, extra in (("a", "1", []), ("b", "2", []), ("c", "3", ["--batch-size", "2"])):
        res = run_cli(
            ["run", str(d / "suite.yaml"), "--out", str(d / name), "--quiet", "--table", "none", *extra],
            d,
            pythonpath=testplugin_path,
            PYTHONHASHSEED=hashseed,
        )
        assert res.returncode == 0, res.stderr
    return d


def test_same_suite_twice_identical_rows_with_a_stochastic_defense(runs: Path) -> None:
    a = raw_rows(runs / "a")
    assert len(a) == len(set(keys(a))) == 2 * 5 * N  # 2 defenses x (clean + 2 attacks x 2 threats)
    gauss = [r for r in a if r["defense"] == "gauss"]
    assert all(
        r["stochastic"] and len(r["adv_correct_draws"]) == 3
        for r in gauss  # det cells too (issue 25)
    )
    assert {r["eot"] for r in gauss if r["attack"] == "PGD-EoT"} == {2}
    # the draws really differ (the defense is random), yet both processes agree on every one of them
    assert any(len(set(r["clean_correct_draws"])) > 1 or len(set(r["adv_correct_draws"])) > 1 for r in gauss)
    assert_same_rows(runs / "b", a)


def test_batch_size_changes_no_decision_and_floats_only_at_round_off(runs: Path) -> None:
    a = comparable(raw_rows(runs / "a"), TIMING + FLOAT_DIAGNOSTICS)
    c = comparable(raw_rows(runs / "c"), TIMING + FLOAT_DIAGNOSTICS)
    assert a == c  # predictions, correctness per draw, seeds, evaluation counts, errors: all identical
    for x, y in zip(comparable(raw_rows(runs / "a")), comparable(raw_rows(runs / "c")), strict=True):
        assert math.isclose(x["pert_norm"], y["pert_norm"], rel_tol=1e-5, abs_tol=1e-5)
        assert math.isclose(x["pert_linf"], y["pert_linf"], rel_tol=1e-5, abs_tol=1e-5)
        lx, ly = x["loss_trace"] or [], y["loss_trace"] or []
        assert len(lx) == len(ly) and all(math.isclose(p, q, rel_tol=1e-4, abs_tol=1e-4) for p, q in zip(lx, ly))


def test_manifest_records_what_a_rerun_needs_and_the_rerun_reproduces(runs: Path, testplugin_path: Path) -> None:
    out = runs / "a"
    m: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    assert (out / "suite.yaml").read_text() == m["suite_text"] == (runs / "suite.yaml").read_text()
    assert m["suite"]["seed"] == m["seed"] == 7 and m["suite"]["defenses"][1]["params"] == {"sigma": 0.2}
    assert m["environment"]["packages"]["torch"] == torch.__version__ and m["environment"]["robbench"]
    assert m["device"] == "cpu" and m["deterministic"] is False and m["threads"] >= 1
    assert "git_sha" in m and "git_dirty" in m and f"run {runs / 'suite.yaml'} --out {out}" in m["command"]
    assert len(m["checkpoints"]["classifier"]) == 64  # the sha256 of the classifier's weights
    assert len(m["cells"]) == 10 and all(
        {"id", "defense", "attack", "eps", "draws", "eot"} <= set(c) for c in m["cells"]
    )
    # rerun from the results directory alone: the stored suite text, the recorded command
    rerun = shlex.split(m["rerun"])
    assert rerun[:3] == ["robbench", "run", str(out / "suite.yaml")] and "NEW_OUT" in rerun
    elsewhere = runs / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "copied.yaml").write_text(m["suite_text"])
    args = [
        str(elsewhere / "copied.yaml")
        if a == str(out / "suite.yaml")
        else str(elsewhere / "rerun")
        if a == "NEW_OUT"
        else a
        for a in rerun[2:]
    ]
    res = run_cli(["run", *args, "--quiet", "--table", "none"], elsewhere, pythonpath=testplugin_path)
    assert res.returncode == 0, res.stderr
    assert_same_rows(elsewhere / "rerun", raw_rows(out))


def test_deterministic_mode_is_recorded_and_restored(tmp_path: Path, write_suite, zoo_dir: Path) -> None:  # type: ignore[no-untyped-def]
    suite = write_suite(base_suite(data={"dataset": "digits", "n_samples": 8}))
    runner = CliRunner()
    for name, extra in (("plain", []), ("det", ["--deterministic"])):
        res = runner.invoke(
            app, ["run", str(suite), "--out", str(tmp_path / name), "--quiet", "--table", "none", *extra]
        )
        assert res.exit_code == 0, res.output
    assert not torch.are_deterministic_algorithms_enabled(), "the flag must not leak out of the run"
    m = json.loads((tmp_path / "det" / "manifest.json").read_text())
    assert m["deterministic"] is True and m["environment"]["deterministic_algorithms"] is True
    assert "--deterministic" in m["rerun"]
    assert json.loads((tmp_path / "plain" / "manifest.json").read_text())["deterministic"] is False
    assert_same_rows(tmp_path / "det", raw_rows(tmp_path / "plain"))  # CPU kernels are deterministic anyway
