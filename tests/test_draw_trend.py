"""The ``draws-not-converged`` row check: a stochastic defense whose worst-of-m accuracy still falls with the last
judge draw is flagged; the worst-of-j curve behind it is the unbiased estimate from the stored draws."""

from __future__ import annotations

import random
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from robbench.cli import app
from robbench.results.load import load_results
from robbench.run.checks.draw_trend import worst_of_curve
from tests.conftest import base_suite

runner = CliRunner()


def test_worst_of_curve_by_hand() -> None:
    t, f = True, False
    curve = worst_of_curve([[t, t, t, t], [t, f, t, t], [f, f, f, f]])
    assert curve == pytest.approx([100 * 7 / 12, 100 * (1 + 3 / 6) / 3, 100 * (1 + 1 / 4) / 3, 100 / 3])


def test_worst_of_curve_ends_at_the_headline_and_never_rises() -> None:
    rng = random.Random(0)
    for _ in range(50):
        m = rng.randint(2, 8)
        draws = [[rng.random() < 0.8 for _ in range(m)] for _ in range(rng.randint(1, 30))]
        curve = worst_of_curve(draws)
        assert len(curve) == m
        assert curve[-1] == pytest.approx(100 * sum(all(d) for d in draws) / len(draws))  # worst of m
        assert curve[0] == pytest.approx(100 * sum(sum(d) / m for d in draws) / len(draws))  # one draw: the mean
        assert all(a >= b - 1e-9 for a, b in pairwise(curve))


def test_a_noisy_defense_is_flagged_a_deterministic_one_is_not(write_suite: Any, tmp_path: Path, zoo_dir: Path) -> None:
    pgd = {"id": "PGD5", "name": "pgd", "params": {"steps": 5}, "gradient": "full", "eot": 2}
    suite = base_suite(
        defenses=[{"name": "none"}, {"name": "random_noise", "params": {"sigma": 0.3}}],
        attacks=[{"id": "clean", "name": "clean"}, pgd],
        data={"dataset": "digits", "n_samples": 16},
    )
    out = tmp_path / "res"
    res = runner.invoke(app, ["run", str(write_suite(suite)), "--out", str(out), "--zoo-dir", str(zoo_dir), "--quiet"])
    assert res.exit_code == 0, res.output
    records = [c for c in load_results(out).manifest.checks or [] if c.check == "draws-not-converged"]
    assert [(c.subject, c.status) for c in records] == [("random_noise", "flag")]
    assert "worst of 3 draws" in records[0].message and "evaluation.draws" in records[0].message
    table = runner.invoke(app, ["table", str(out), "--format", "md"])
    assert "draws-not-converged" in table.output
