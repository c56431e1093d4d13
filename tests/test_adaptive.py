"""``adaptive`` (issue 14): one entry expands per defense into the protocols its declarations allow; the
expansion is validated, shown and stored; the gradient-masking canaries fall under it; bad input is
refused before anything is written. Parametrised over the defense registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from robbench.cli import app
from robbench.core import registry
from robbench.errors import SuiteError
from robbench.run.adaptive import expand_adaptive
from robbench.run.validate import check_suite
from robbench.suite.model import Suite
from robbench.suite.reported import WORST
from tests.conftest import base_suite, run_suite_cli

runner = CliRunner()
ADAPTIVE = {"id": "adaptive", "name": "adaptive", "params": {"steps": 10, "eot": 2}}


@pytest.mark.parametrize("name", registry.defenses.names())
def test_every_defense_expands_into_valid_protocols(name: str) -> None:
    cls = registry.defenses.get(name)
    defense = {"name": name, "params": dict(cls.example_params)}
    suite = Suite.model_validate(base_suite(defenses=[defense], attacks=[{"id": "clean", "name": "clean"}, ADAPTIVE]))
    notes: list[str] = []
    expanded = expand_adaptive(suite, notes)
    protocols = [a for a in expanded.attacks if a.id.startswith("adaptive.")]
    assert protocols and len(notes) == 1 and all(a.defenses == [name] for a in protocols)
    kinds = {(a.gradient, a.randomness, a.eot > 1) for a in protocols if a.name == "pgd"}
    if cls.stochastic:  # EoT and the judge's seeds: both ways of attacking the randomness
        assert any(eot for _, _, eot in kinds) and any(r == "det" for _, r, _ in kinds)
    if not cls.differentiable:
        assert all(g != "full" for g, _, _ in kinds)
    check_suite(suite, models=False)


@pytest.mark.parametrize("name", registry.defenses.names())
def test_the_quick_level_is_a_labelled_subset_of_the_full_cascade(name: str) -> None:
    """``level: quick`` keeps a non-empty subset of the full protocols, nothing that costs more than one
    pass per step; on a randomised defense its det-only protocols read ``adaptive (weak)`` (they missed up
    to 6 points of the full cascade on digits), on a deterministic one they are at full strength."""
    from robbench.run.strength import attack_strength

    cls = registry.defenses.get(name)
    defense = {"name": name, "params": dict(cls.example_params)}
    expanded = {}
    for level in ("full", "quick"):
        entry = {**ADAPTIVE, "params": {"steps": 10, "eot": 4, "level": level}}
        suite = Suite.model_validate(base_suite(defenses=[defense], attacks=[entry]))
        expanded[level] = {a.id: a for a in expand_adaptive(suite).attacks}
    quick, full = expanded["quick"], expanded["full"]
    assert quick and set(quick) <= set(full)
    for spec in quick.values():
        assert spec.eot == 1 and spec.name in ("pgd", "square"), spec.id
        randomness = spec.randomness if cls.stochastic else "none"
        kind, why = attack_strength(spec, stochastic=bool(cls.stochastic), randomness=randomness, eot=1)
        if cls.stochastic:
            assert kind == "adaptive (weak)" and why is not None and "quick level" in why, (spec.id, kind)
        else:
            assert kind == "adaptive", (spec.id, kind)


CANARIES = [
    {"name": "quantize", "params": {"levels": 4}},
    {"name": "random_noise", "params": {"sigma": 0.3}},
    {"name": "random_phase"},
]


def test_the_gradient_masking_canaries_fall_under_adaptive(write_suite: Any, tmp_path: Path, zoo_dir: Path) -> None:
    """Each canary falls far below its clean line under adaptive (quantize, which masks the exact gradient,
    also far below single-draw full-gradient PGD), and the worst case is below or equal to every protocol
    line (it is the per-sample worst case over them)."""
    naive = {"id": "PGD10", "name": "pgd", "params": {"steps": 10}}
    suite = base_suite(
        defenses=CANARIES,
        attacks=[{"id": "clean", "name": "clean"}, naive, {**ADAPTIVE, "params": {"steps": 10, "eot": 4}}],
        threats=[{"norm": "linf", "eps": 0.15}],
        data={"dataset": "digits", "n_samples": 32},
    )
    loaded, s = run_suite_cli(write_suite(suite), tmp_path / "res", zoo_dir)
    for defense in ("quantize", "random_noise", "random_phase"):
        lines = s[s["defense"] == defense].set_index("attack")["accuracy"]
        adaptive = min(v for k, v in lines.items() if str(k).startswith("adaptive."))
        worst = lines[WORST]
        assert worst <= adaptive and worst <= lines["PGD10"]
        assert worst <= lines["clean"] - 0.25, (defense, dict(lines))
        if defense == "quantize":
            assert worst <= lines["PGD10"] - 0.25, dict(lines)
    assert any(a.id == "adaptive.BPDA10" for a in loaded.manifest.suite.attacks)  # the expansion is stored


def test_validate_shows_the_expansion(write_suite: Any) -> None:
    suite = base_suite(defenses=[{"name": "none"}, {"name": "quantize"}], attacks=[ADAPTIVE])
    res = runner.invoke(app, ["validate", str(write_suite(suite))])
    assert res.exit_code == 0, res.output
    assert "adaptive on none: PGD10-full" in res.output and "adaptive on quantize: BPDA10" in res.output


@pytest.mark.parametrize(
    ("attack", "match"),
    [
        ({**ADAPTIVE, "gradient": "classifier"}, "chooses gradient mode"),
        ({**ADAPTIVE, "eot": 4}, "chooses gradient mode"),
        ({**ADAPTIVE, "params": {"steps": 10, "max_evals": 30}}, "over max_evals 30"),
        ({**ADAPTIVE, "params": {"eot": 1}}, "eot"),
    ],
)
def test_bad_adaptive_entries_are_refused_and_nothing_is_written(
    attack: dict[str, Any], match: str, write_suite: Any, tmp_path: Path
) -> None:
    suite = base_suite(defenses=[{"name": "random_noise"}], attacks=[attack])
    with pytest.raises(SuiteError, match=match):
        check_suite(Suite.model_validate(suite), models=False)
    out = tmp_path / "never"
    res = runner.invoke(app, ["run", str(write_suite(suite)), "--out", str(out), "--quiet"])
    assert res.exit_code == 2 and not out.exists(), res.output


def test_the_surrogate_process_is_a_cheaper_differentiable_purifier(digits_classifier: Any) -> None:
    """Lee & Kim's surrogate process (``gradient: custom`` on the diffusion purifiers): the same forward
    noise as the real purification, half the reverse steps, an exact and finite gradient."""
    import torch

    from robbench.attacks.target import Target
    from robbench.core.components import BuildContext, parse_params
    from robbench.core.seeding import SampleRNG
    from robbench.data import load_dataset

    cls = registry.defenses.get("diffpure")
    ds = load_dataset("digits")
    ctx = BuildContext(dataset=ds, device=torch.device("cpu"), classifier=digits_classifier)
    defense = cls(parse_params(cls.Params, {**cls.example_params, "steps": 4}, "diffpure"), ctx).eval()
    assert cls.surrogate_process and len(defense.surrogate_timesteps()) == 2 and len(defense.timesteps) == 4
    x, y = ds.load("test").x[:4], ds.load("test").y[:4]
    rng = SampleRNG.for_samples([str(i) for i in range(4)], 0, "sp")
    e0 = defense.evals
    defense(x, rng)
    real = defense.evals - e0
    target = Target(defense, gradient="custom", randomness="det", rng=rng)
    e1 = defense.evals
    _, grad, _ = target.loss_grad(x, y)
    assert defense.evals - e1 < real  # cheaper than the real purification
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_apgd_runs_at_every_norm_in_adaptive() -> None:
    """Native APGD covers L1 (l1-APGD): an L1-only suite's adaptive cascade keeps APGD-CE and APGD-T."""
    suite = Suite.model_validate(base_suite(threats=[{"norm": "l1", "eps": 4.0}], attacks=[ADAPTIVE]))
    ids = {a.id.split(".")[-1] for a in expand_adaptive(suite).attacks if a.name == "apgd"}
    assert any(i.startswith("APGD-CE") for i in ids) and any(i.startswith("APGD-T") for i in ids)


def test_protocols_keep_only_the_norms_their_attack_supports(monkeypatch: pytest.MonkeyPatch) -> None:
    """A protocol whose attack lacks a norm (here APGD made Linf/L2, as it was before l1-APGD): on an
    L1-only suite adaptive leaves it out; on a mixed one it is cut to the norms it supports."""
    from robbench.attacks.apgd import APGD

    monkeypatch.setattr(APGD, "norms", frozenset({"linf", "l2"}))
    for threats, apgd_norms in (
        ([{"norm": "l1", "eps": 4.0}], None),
        ([{"norm": "l1", "eps": 4.0}, {"norm": "linf", "eps": 0.1}], ["linf"]),
    ):
        suite = Suite.model_validate(base_suite(threats=threats, attacks=[ADAPTIVE]))
        apgd = [a for a in expand_adaptive(suite).attacks if a.name == "apgd"]
        assert (apgd[0].norms if apgd else None) == apgd_norms
        check_suite(suite, models=False)
