"""DiffAttack (issue 14): the deviated-reconstruction term is computed on the real purifier's reverse chain
(DiffPure on digits), changes the gradient, vanishes at ``lam: 0`` (then the attack is PGD, iterate for
iterate), and the attack is refused where it cannot apply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from robbench.attacks.diffattack import DiffAttack, DiffAttackParams
from robbench.attacks.pgd import PGD, PGDParams
from robbench.attacks.target import Target
from robbench.cli.app import app
from robbench.core import registry
from robbench.core.components import BuildContext, parse_params
from robbench.core.seeding import SampleRNG
from robbench.core.threat import ThreatModel
from robbench.data import load_dataset
from tests.conftest import base_suite

runner = CliRunner()


def _diffpure(digits_classifier: Any) -> tuple[Any, torch.Tensor, torch.Tensor]:
    cls = registry.defenses.get("diffpure")
    ds = load_dataset("digits")
    ctx = BuildContext(dataset=ds, device=torch.device("cpu"), classifier=digits_classifier)
    defense = cls(parse_params(cls.Params, {**cls.example_params, "steps": 3}, "diffpure"), ctx).eval()
    test = ds.load("test")
    return defense, test.x[:6], test.y[:6]


def _rng(tag: str) -> SampleRNG:
    return SampleRNG.for_samples([str(i) for i in range(6)], 0, tag)


def test_the_deviation_term_uses_the_reverse_chain(digits_classifier: Any) -> None:
    defense, x, y = _diffpure(digits_classifier)
    assert type(defense).records_trajectory
    attack = DiffAttack(DiffAttackParams(steps=1, lam=1.0))
    target = Target(defense, gradient="full", randomness="det", rng=_rng("da"))
    defense.trajectory = []
    loss_fn = attack.ascent_loss(target, x)
    x_adv = (x + 0.05).clamp(0, 1)
    with_dev, g_dev, _ = target.loss_grad(x_adv, y, loss_fn)
    plain, g_plain, _ = target.loss_grad(x_adv, y, "ce")
    defense.trajectory = None
    # det: the same draw both times, so the difference is the deviation term, positive per sample
    assert (with_dev > plain).all()
    assert not torch.allclose(g_dev, g_plain)
    assert torch.isfinite(g_dev).all()


def test_lam_zero_is_pgd_iterate_for_iterate(digits_classifier: Any) -> None:
    defense, x, y = _diffpure(digits_classifier)
    threat = ThreatModel("linf", 0.1)
    outs = []
    for attack in (DiffAttack(DiffAttackParams(steps=3, lam=0.0)), PGD(PGDParams(steps=3))):
        target = Target(defense, gradient="full", randomness="det", rng=_rng("eq"))
        outs.append(attack.run(target, x, y, threat, rng=_rng("start")))
    assert torch.equal(outs[0], outs[1])
    assert defense.trajectory is None  # the attack leaves no recording switched on


@pytest.mark.parametrize(
    ("defense", "gradient", "needle"),
    [
        ({"name": "random_noise", "params": {"sigma": 0.3}}, "full", "records_trajectory"),
        ({"name": "diffpure", "params": {"diffusion_model": "digits-diffusion", "steps": 2}}, "bpda", "gradient"),
    ],
)
def test_refused_where_it_cannot_apply(
    write_suite: Any, tmp_path: Path, defense: dict[str, Any], gradient: str, needle: str
) -> None:
    attack = {"id": "DA", "name": "diffattack", "params": {"steps": 10}, "gradient": gradient}
    suite = base_suite(defenses=[defense], attacks=[attack])
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", str(write_suite(suite)), "--out", str(out), "--quiet"])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "fix:" in res.output and not out.exists()
