"""`robbench compare`: paired accuracy differences, exact McNemar p-values, the --tolerance gate,
one-sided cells, other suite versions; and the CI regression gate on real digits runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from scipy.stats import binomtest
from typer.testing import CliRunner

from robbench.api import compare
from robbench.cli.app import app
from tests.conftest import base_suite, cli_cmd, cli_env
from tests.synth import bools, cell, write_results

runner = CliRunner()
N = 80


def _suite(name: str = "s", **over: Any) -> dict[str, Any]:
    suite: dict[str, Any] = {
        "name": name,
        "data": {"dataset": "digits", "n_samples": N},
        "classifier": "digits-cnn",
        "threats": [{"norm": "linf", "eps": 0.1}, {"norm": "l2", "eps": 0.5}],
        "defenses": [{"name": "none"}, {"name": "random_noise", "id": "noise"}],
        "attacks": [{"id": "clean", "name": "clean"}, {"id": "PGD", "name": "pgd"}],
        "evaluation": {"draws": 2, "overrides": ["few-draws"], "scoring": "worst"},
    }
    suite.update(over)
    return suite


def _cells(pgd_b: list[bool] | None = None, salt: str = "", drop_l2: bool = False) -> list[dict[str, Any]]:
    out = [
        cell("none", "clean", "none", 0.0, bools(75, N), salt=salt),
        cell("none", "PGD", "linf", 0.1, pgd_b if pgd_b is not None else bools(40, N), salt=salt),
        cell("noise", "clean", "none", 0.0, [[True, i % 4 != 0] for i in range(N)], stochastic=True, salt=salt),
    ]
    if not drop_l2:
        out.append(cell("none", "PGD", "l2", 0.5, bools(30, N), salt=salt))
    return out


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cmp")
    # B: the Linf PGD cell loses samples 30-39 (10 discordant for A) and gains 60-62 (3 for B)
    b = [(i < 30) or (60 <= i < 63) for i in range(N)]
    return {
        "a": write_results(root / "a", _suite(), _cells()),
        "same": write_results(root / "same", _suite(), _cells()),
        "b": write_results(root / "b", _suite(), _cells(b)),
        "v2": write_results(root / "v2", _suite(), _cells(b, salt="v2", drop_l2=True)),
        "other": write_results(root / "other", _suite("other-suite"), _cells()),
    }


def _row(c: Any, defense: str, attack: str, norm: str) -> Any:
    rows = c.cells[(c.cells.defense == defense) & (c.cells.attack == attack) & (c.cells.norm == norm)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_paired_difference_and_exact_mcnemar(dirs: dict[str, Path]) -> None:
    c = compare(dirs["a"], dirs["b"])
    r = _row(c, "none", "PGD", "linf")
    assert r.n == N and r.acc_a == pytest.approx(40 / N) and r.acc_b == pytest.approx(33 / N)
    assert r["diff"] == pytest.approx(-7 / N) and (r.a_only, r.b_only) == (10, 3)
    assert r.p_value == pytest.approx(binomtest(10, 13, 0.5).pvalue) and r.same_config
    same = _row(c, "none", "PGD", "l2")
    assert same["diff"] == 0 and same.p_value == 1.0 and (same.a_only, same.b_only) == (0, 0)
    assert c.only_a.empty and c.only_b.empty and c.passed  # no tolerance: nothing gated
    # stochastic cells are compared under the suites' scoring (worst of 2 draws: 3/4 robust)
    noisy = _row(c, "noise", "clean", "none")
    assert noisy.acc_a == pytest.approx(0.75)
    single = _row(compare(dirs["a"], dirs["b"], scoring="single"), "noise", "clean", "none")
    assert single.acc_a == pytest.approx(1.0)


@pytest.mark.parametrize("tolerance,passed", [(10.0, True), (8.75, True), (8.7, False), (0.0, False)])
def test_tolerance_gate(dirs: dict[str, Path], tolerance: float, passed: bool) -> None:
    c = compare(dirs["a"], dirs["b"], tolerance=tolerance)  # the drop is 8.75 points
    assert c.passed is passed
    assert len(c.regressions) == (0 if passed else 1)
    res = runner.invoke(app, ["compare", str(dirs["a"]), str(dirs["b"]), "--tolerance", str(tolerance)])
    assert res.exit_code == (0 if passed else 1), res.output
    assert ("PASS" if passed else "FAIL") in res.output


def test_identical_runs_pass_any_tolerance_and_b_better_passes(dirs: dict[str, Path]) -> None:
    res = runner.invoke(app, ["compare", str(dirs["a"]), str(dirs["same"]), "--tolerance", "0"])
    assert res.exit_code == 0 and "PASS" in res.output
    res = runner.invoke(app, ["compare", str(dirs["b"]), str(dirs["a"]), "--tolerance", "0"])  # A improves on B
    assert res.exit_code == 0, res.output


def test_other_suite_version_matches_by_display_ids_and_lists_one_sided_cells(dirs: dict[str, Path]) -> None:
    c = compare(dirs["a"], dirs["v2"], tolerance=10)
    r = _row(c, "none", "PGD", "linf")
    assert not r.same_config and r["diff"] == pytest.approx(-7 / N)  # matched although the cell ids differ
    assert any("changed configuration" in n for n in c.notes)
    assert c.only_b.empty and c.only_a[["defense", "attack", "norm"]].values.tolist() == [["none", "PGD", "l2"]]
    assert not c.passed and "missing in B" in c.verdict()  # a vanished cell fails the gate ...
    assert compare(dirs["a"], dirs["v2"], tolerance=10, allow_missing=True).passed  # ... unless allowed
    res = runner.invoke(app, ["compare", str(dirs["a"]), str(dirs["v2"]), "--format", "md"])
    assert res.exit_code == 0 and "only in A: none: PGD L2 0.5 (n=80)" in res.stdout and "*" in res.stdout
    back = compare(dirs["v2"], dirs["a"])
    assert back.only_b[["attack", "norm"]].values.tolist() == [["PGD", "l2"]] and back.only_a.empty


def test_other_suite_is_allowed_but_reported(dirs: dict[str, Path]) -> None:
    c = compare(dirs["a"], dirs["other"], tolerance=0)
    assert c.passed and any("suite 'other-suite'" in n for n in c.notes)
    res = runner.invoke(app, ["compare", str(dirs["a"]), str(dirs["other"])])
    assert res.exit_code == 0 and "other-suite" in res.output


@pytest.mark.parametrize("fmt", ["rich", "md", "csv", "json"])
def test_compare_formats(dirs: dict[str, Path], fmt: str) -> None:
    res = runner.invoke(app, ["compare", str(dirs["a"]), str(dirs["v2"]), "--format", fmt, "--tolerance", "5"])
    assert res.exit_code == 1
    if fmt == "json":
        data = json.loads(res.stdout)
        assert data["passed"] is False and data["only_a"][0]["norm"] == "l2"
        assert [c for c in data["cells"] if c["norm"] == "linf"][0]["a_only"] == 10
    elif fmt == "csv":
        assert "side" in res.stdout.splitlines()[0] and ",A" in res.stdout
    else:
        assert "-8.8" in res.stdout and "only in A" in res.stdout


def test_bad_options() -> None:
    res = runner.invoke(app, ["compare", "x", "y", "--format", "latex"])
    assert res.exit_code == 2 and "--format" in res.output
    res = runner.invoke(app, ["compare", "x", "y", "--scoring", "best"])
    assert res.exit_code == 2 and "--scoring" in res.output


# ---- the CI regression gate on real runs ----------------------------------------------------------------
def test_ci_gate_fails_on_a_weakened_defense_and_passes_an_identical_rerun(tmp_path: Path, zoo_dir) -> None:  # type: ignore[no-untyped-def]
    """Baseline: a digits suite with random-noise purification at sigma 0.1. An identical rerun
    passes `compare --tolerance`; the same suite with the defense weakened (sigma 0.4, more noise
    than the classifier tolerates) fails it with exit 1, in a real process."""
    from robbench.api import run

    def suite(sigma: float) -> dict[str, Any]:
        return base_suite(
            name="ci",
            data={"dataset": "digits", "n_samples": 40},
            defenses=[{"name": "none"}, {"name": "random_noise", "id": "noise", "params": {"sigma": sigma}}],
            attacks=[
                {"id": "clean", "name": "clean"},
                {"id": "BPDA3", "name": "pgd", "params": {"steps": 3}, "gradient": "bpda", "defenses": ["noise"]},
            ],
            evaluation={"batch_size": 20, "draws": 2, "overrides": ["few-draws"]},
        )

    paths = {}
    for name, sigma in (("base", 0.1), ("weak", 0.4)):
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(suite(sigma), sort_keys=False))
    for out, path in (("baseline", "base"), ("rerun", "base"), ("weakened", "weak")):
        report = run(paths[path], out=tmp_path / out, quiet=True, checks=False)
        assert not report.failures
    ok = runner.invoke(
        app, ["compare", str(tmp_path / "baseline"), str(tmp_path / "rerun"), "--tolerance", "2", "--format", "json"]
    )
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert all(c["diff"] == 0 and c["p_value"] == 1.0 for c in data["cells"]) and len(data["cells"]) == 3
    weak = compare(tmp_path / "baseline", tmp_path / "weakened", tolerance=2)
    worse = {(r.defense, r.attack) for r in weak.regressions.itertuples()}
    assert ("noise", "clean") in worse and not any(d == "none" for d, _ in worse)  # only the weakened defense
    assert any("configuration" in n for n in weak.notes)  # the defense's parameters changed
    # the gate as CI runs it: a real process, exit status 1
    bad = subprocess.run(
        cli_cmd("compare", str(tmp_path / "baseline"), str(tmp_path / "weakened"), "--tolerance", "2"),
        capture_output=True,
        text=True,
        env=cli_env(COLUMNS="100"),
        cwd=tmp_path,
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL" in bad.stdout and "worse" in bad.stdout
