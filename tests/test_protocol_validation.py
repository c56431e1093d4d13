"""Bad protocol input: clear errors (or a recorded warning) before any compute."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from robbench.api import run
from robbench.cli.app import app
from robbench.results.store import ResultsDir
from tests.conftest import base_suite

runner = CliRunner()


def _validate(write_suite, suite: dict) -> tuple[int, str]:  # type: ignore[no-untyped-def,type-arg]
    res = runner.invoke(app, ["validate", str(write_suite(suite))])
    return res.exit_code, res.output


def test_bpda_on_a_defense_without_purifier(write_suite) -> None:  # type: ignore[no-untyped-def]
    code, out = _validate(write_suite, base_suite(attacks=[{"id": "BPDA", "name": "pgd", "gradient": "bpda"}]))
    assert code == 2
    assert "suite.attacks.0.gradient" in out and "BPDA replaces a purifier, and defense 'none' has none" in out


def test_eot_on_a_deterministic_defense_warns_forces_k1_and_records_it(write_suite, tmp_path: Path, zoo_dir) -> None:  # type: ignore[no-untyped-def]
    suite = base_suite(
        data={"dataset": "digits", "n_samples": 4},
        defenses=[{"name": "none"}, {"name": "random_noise", "params": {"sigma": 0.1}}],
        attacks=[{"id": "PGD2-EoT8", "name": "pgd", "params": {"steps": 2}, "eot": 8}],
    )
    code, out = _validate(write_suite, suite)
    assert code == 0
    assert (
        "warning: attack PGD2-EoT8: EoT(8) is pointless on defense 'none' (defense 'none' is deterministic); "
        "k forced to 1 (recorded)" in " ".join(out.split())
    )
    assert "random_noise" not in out  # EoT applies to the stochastic defense
    outdir = tmp_path / "res"
    with pytest.warns(UserWarning, match="k forced to 1"):
        run(write_suite(suite), out=outdir, quiet=True, threads=1, checks=False)
    manifest = ResultsDir(outdir).read_manifest()
    assert manifest is not None and any("EoT(8) is pointless on defense 'none'" in n for n in manifest["notes"])
    cells = {c["defense"]: c for c in manifest["cells"]}
    assert cells["none"]["eot"] == 1 and cells["none"]["eot_requested"] == 8
    assert cells["random_noise"]["eot"] == 8 and "eot_requested" not in cells["random_noise"]
    rows = ResultsDir(outdir).read_rows()
    assert set(rows.loc[rows.defense == "none", "eot"]) == {1} and set(
        rows.loc[rows.defense == "random_noise", "eot"]
    ) == {8}


@pytest.mark.parametrize(
    ("attack", "field", "message"),
    [
        (
            {"id": "a", "name": "autoattack", "params": {"version": "custom"}},
            "suite.attacks.0.params",
            "version custom needs",
        ),
        (
            {"id": "a", "name": "autoattack", "params": {"attacks": ["apgd-ce"]}},
            "suite.attacks.0.params",
            "only used with version custom",
        ),
        (
            {"id": "a", "name": "autoattack", "params": {"version": "custom", "attacks": ["apgd-x"]}},
            "suite.attacks.0.params.attacks",
            "",
        ),
        (
            {"id": "a", "name": "autoattack", "params": {"targets": 12}},
            "suite.attacks.0 (a): params.targets",
            "only 9 other classes",
        ),
        ({"id": "a", "name": "autoattack", "eot": 4}, "suite.attacks.0.eot", "cannot apply"),
        ({"id": "a", "name": "square", "eot": 4}, "suite.attacks.0.eot", "cannot apply"),
        ({"id": "a", "name": "pgd", "norms": ["l3"]}, "suite.attacks.0.norms", "unknown norm"),
    ],
)
def test_attack_parameter_errors_name_the_field(write_suite, attack: dict, field: str, message: str) -> None:  # type: ignore[no-untyped-def,type-arg]
    code, out = _validate(write_suite, base_suite(attacks=[attack]))
    out = " ".join(out.split())
    assert code == 2 and field in out and message in out, out
