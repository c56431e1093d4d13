"""DiffHammer's selective attack (issue 14): on a randomised defense judged worst of 4 draws it is at least
as strong as PGD+EoT at the same steps and draws (within noise), attacks every point, and counts its cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tests.conftest import base_suite, run_suite_cli

runner = CliRunner()


def test_selective_attack_beside_pgd_eot(write_suite: Any, tmp_path: Path, zoo_dir: Path) -> None:
    attacks = [
        {"id": "clean", "name": "clean"},
        {"id": "PGD10-EoT4", "name": "pgd", "params": {"steps": 10}, "eot": 4},
        {"id": "Hammer10-4", "name": "diffhammer", "params": {"steps": 10, "draws": 4}},
    ]
    suite = base_suite(
        defenses=[{"name": "random_noise", "params": {"sigma": 0.3}}],
        attacks=attacks,
        data={"dataset": "digits", "n_samples": 48},
    )
    loaded, s = run_suite_cli(write_suite(suite), tmp_path / "res", zoo_dir)
    s = s.set_index("attack")
    assert s.loc["Hammer10-4", "accuracy"] <= s.loc["PGD10-EoT4", "accuracy"] + 0.1
    assert s.loc["Hammer10-4", "accuracy"] <= s.loc["clean", "accuracy"] - 0.2
    assert s.loc["Hammer10-4", "evaluation"] == "adaptive"  # its own draws count as EoT
    rows = loaded.rows[loaded.rows["attack"] == "Hammer10-4"]
    assert (rows["pert_linf"] > 0).all()
    assert (rows["forward_evals"] == 11 * 4).all() and (rows["backward_evals"] == 11 * 4).all()
