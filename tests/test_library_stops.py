"""Library attacks where the attack's forward is not the judge's (issue 25 items 2, 3 and 8): every point
is attacked and a best iterate returned, never the clean image by a one-forward stopping rule; the
candidates are picked by the margin over the judge's draws; what cannot do this is refused at validate.
Real components: digits, the zoo CNN, pyautoattack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from robbench.attacks.target import Target
from robbench.cli import app
from robbench.core.components import BuildContext
from robbench.data.base import load_dataset
from robbench.defenses.random_noise import RandomNoise
from robbench.errors import SuiteError
from robbench.results.load import load_results
from robbench.run.validate import check_suite
from robbench.suite.model import Suite
from tests.conftest import base_suite

pytest.importorskip("pyautoattack")
runner = CliRunner()
NOISE = {"name": "random_noise", "params": {"sigma": 0.3}}


def _unperturbed(out: Path, attack: str) -> float:
    rows = load_results(out).rows
    g = rows[rows["attack"] == attack]
    return float((g["pert_linf"] == 0).mean())


def _run(write_suite: Any, tmp_path: Path, zoo_dir: Path, suite: dict[str, Any]) -> Path:
    out = tmp_path / "res"
    res = runner.invoke(
        app,
        ["run", str(write_suite(suite)), "--out", str(out), "--zoo-dir", str(zoo_dir), "--quiet", "--table", "none"],
    )
    assert res.exit_code == 0, res.output
    return out


def test_autoattack_apgd_t_and_square_attack_every_point_of_a_randomised_defense(
    write_suite: Any, tmp_path: Path, zoo_dir: Path
) -> None:
    """Items 2 and 8: APGD-T and Square used to return the clean image for most points (77/96 and 91/96)."""
    attacks = [
        {"id": "clean", "name": "clean"},
        {
            "id": "AA-t",
            "name": "autoattack",
            "params": {"version": "custom", "attacks": ["apgd-t"], "apgd_iter": 10, "targets": 2},
        },
        {"id": "SQ", "name": "square", "params": {"n_queries": 60}},
    ]
    suite = base_suite(defenses=[NOISE], attacks=attacks, data={"dataset": "digits", "n_samples": 12})
    out = _run(write_suite, tmp_path, zoo_dir, suite)
    assert _unperturbed(out, "AA-t") == 0.0
    assert _unperturbed(out, "SQ") == 0.0


def test_gray_box_autoattack_attacks_every_point(write_suite: Any, tmp_path: Path, zoo_dir: Path) -> None:
    """Item 3: on the classifier alone the library stops at the classifier's first mistake and returns the
    clean image elsewhere (57/96 unperturbed); now every point gets its best-loss iterate."""
    attacks = [
        {"id": "clean", "name": "clean"},
        {
            "id": "gAA",
            "name": "autoattack",
            "params": {"version": "custom", "attacks": ["apgd-ce"], "apgd_iter": 10},
            "gradient": "classifier",
        },
    ]
    suite = base_suite(
        defenses=[{"name": "quantize", "params": {"levels": 4}}],
        attacks=attacks,
        data={"dataset": "digits", "n_samples": 12},
    )
    out = _run(write_suite, tmp_path, zoo_dir, suite)
    assert _unperturbed(out, "gAA") == 0.0


def test_candidates_are_picked_by_the_margin_over_the_judges_draws(digits_classifier: Any) -> None:
    """Item 8: on a randomised target the margin that picks a candidate averages the judge's draws."""
    from robbench.core.seeding import SampleRNG

    ds = load_dataset("digits")
    ctx = BuildContext(dataset=ds, device=torch.device("cpu"), classifier=digits_classifier)
    defense = RandomNoise(RandomNoise.Params(sigma=0.3), ctx).eval()
    rng = SampleRNG.for_samples(["a", "b"], 0, "t")
    fresh = Target(defense, gradient="full", randomness="fresh", rng=rng, judge_draws=4)
    det = Target(defense, gradient="full", randomness="det", rng=rng, judge_draws=4)
    assert fresh.margin_draws == 4 and not fresh.judged_forward
    assert det.margin_draws == 1 and det.judged_forward
    gray = Target(defense, gradient="classifier", randomness="det", rng=rng, judge_draws=4)
    assert not gray.judged_forward


@pytest.mark.parametrize(
    ("attack", "defense"),
    [
        ({"id": "AA", "name": "autoattack", "params": {"version": "standard"}}, NOISE),
        ({"id": "AA", "name": "autoattack", "params": {"version": "custom", "attacks": ["fab"]}}, NOISE),
        (
            {
                "id": "AA",
                "name": "autoattack",
                "params": {"version": "custom", "attacks": ["fab"]},
                "gradient": "classifier",
            },
            {"name": "quantize"},
        ),
    ],
)
def test_a_library_stopping_rule_on_a_target_the_judge_does_not_use_is_refused(
    attack: dict[str, Any], defense: dict[str, Any], write_suite: Any, tmp_path: Path
) -> None:
    suite = base_suite(defenses=[defense], attacks=[attack])
    with pytest.raises(SuiteError, match="stopping rule") as exc:
        check_suite(Suite.model_validate(suite))
    assert "library-early-stop" in (exc.value.hint or "")
    out = tmp_path / "never"
    res = runner.invoke(app, ["run", str(write_suite(suite)), "--out", str(out), "--quiet"])
    assert res.exit_code == 2 and "library-early-stop" in res.output and not out.exists()
    allowed = base_suite(defenses=[defense], attacks=[attack], evaluation={"overrides": ["library-early-stop"]})
    check_suite(Suite.model_validate(allowed))


def test_fab_on_the_judges_forward_is_allowed() -> None:
    """Deterministic defense, full gradients: the library's success is the judge's; nothing to refuse."""
    attack = {"id": "AA", "name": "autoattack", "params": {"version": "standard"}}
    check_suite(Suite.model_validate(base_suite(defenses=[{"name": "quantize"}], attacks=[attack])))
