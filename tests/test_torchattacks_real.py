"""The torchattacks adapter against the real torchattacks package (3.5.x).

torchattacks' code imports no torchvision, but its metadata requires it, so CI installs it with
``pip install --no-deps torchattacks==3.5.1`` (.ci/run). Without the package these tests skip, and
under ``ROBBENCH_REQUIRE_REAL_DATA=1`` (CI) they fail instead."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from robbench.cli.app import app
from robbench.results.store import ResultsDir
from tests.conftest import base_suite

HAVE = importlib.util.find_spec("torchattacks") is not None
needs_torchattacks = pytest.mark.skipif(
    not HAVE and os.environ.get("ROBBENCH_REQUIRE_REAL_DATA") != "1",
    reason="torchattacks not installed (pip install --no-deps torchattacks==3.5.1)",
)


def _suite(tmp_path: Path, defense: dict[str, object], overrides: list[str] | None = None, grad: str = "bpda") -> Path:
    import yaml

    spec = base_suite(data={"dataset": "digits", "split": "test", "n_samples": 16})
    spec["defenses"] = [defense]
    spec["threats"] = [{"norm": "linf", "eps": 0.1}]
    spec["attacks"] = [
        {"id": "clean", "name": "clean"},
        {
            "id": "taPGD",
            "name": "torchattacks.PGD",
            "params": {"kwargs": {"steps": 10, "alpha": 0.025}},
            "gradient": grad,
        },
        {"id": "PGD5", "name": "pgd", "params": {"steps": 5}, "gradient": grad, "eot": 2},
    ]
    if overrides:
        spec.setdefault("evaluation", {})["overrides"] = overrides
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@needs_torchattacks
def test_real_torchattacks_pgd_lowers_accuracy_on_a_deterministic_classifier(tmp_path: Path, zoo_dir: Path) -> None:
    """On the undefended CNN (the judge's forward) the real library's PGD runs and breaks points."""
    suite = _suite(tmp_path, {"name": "none"}, grad="full")
    res = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp_path / "out"), "--quiet", "--table", "none"])
    assert res.exit_code == 0, res.output
    rows = ResultsDir(tmp_path / "out").read_rows()
    acc = rows.groupby("attack")["adv_correct"].mean()
    assert acc["taPGD"] < acc["clean"] - 0.2
    assert (rows.loc[rows["attack"] == "taPGD", "pert_linf"] <= 0.1 + 1e-6).all()


@needs_torchattacks
def test_real_torchattacks_refused_on_a_randomised_defense_unless_overridden(tmp_path: Path, zoo_dir: Path) -> None:
    """Its stopping rule is the library's: refused on a randomised target, with the override named and nothing
    written; with the override it runs, and the cell and the worst case carry the override mark."""
    noise = {"id": "noise", "name": "random_noise", "params": {"sigma": 0.3}}
    out = tmp_path / "refused"
    res = CliRunner().invoke(app, ["run", str(_suite(tmp_path, noise)), "--out", str(out), "--quiet"])
    assert res.exit_code != 0
    assert "library-early-stop" in res.output and not out.exists()
    allowed = _suite(tmp_path, noise, ["library-early-stop"])
    out = tmp_path / "allowed"
    res = CliRunner().invoke(app, ["run", str(allowed), "--out", str(out), "--quiet", "--table", "md"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("| noise |")]
    marked = {ln.split("|")[2].strip() for ln in lines if "(override)" in ln}
    assert marked == {"taPGD", "worst-case"}
    assert "FLAG library-early-stop" in res.output
    assert isinstance(ResultsDir(out).read_rows(), pd.DataFrame)
