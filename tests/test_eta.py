"""The progress bar's time left (issue 26 item 7): each sample weighs its estimated defense passes, scaled by the
defense's measured seconds per pass where rows are stored; the bar's time left is cost left over cost per second."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from robbench.run.eta import cell_weights, defense_factors, passes_per_sample
from robbench.run.plan import Plan
from robbench.run.progress import ProgressBar
from robbench.suite.load import parse_suite
from tests.conftest import base_suite


def _plan() -> Plan:
    suite = base_suite(
        defenses=[{"name": "none"}, {"name": "random_noise", "params": {"sigma": 0.1}}],
        attacks=[
            {"id": "clean", "name": "clean"},
            {"id": "PGD10", "name": "pgd", "params": {"steps": 10}, "eot": 4},
            {"id": "APGD5x2", "name": "apgd", "params": {"steps": 5, "restarts": 2}, "defenses": ["none"]},
        ],
    )
    return Plan(parse_suite(yaml.safe_dump(suite)))


def test_passes_follow_steps_eot_restarts_and_draws() -> None:
    cells = {c.label: c for c in _plan().cells}
    noisy_pgd = cells["random_noise / PGD10 / Linf 0.1"]
    assert passes_per_sample(noisy_pgd) == 2 * 11 * 4 + noisy_pgd.draws  # EoT 4 on the randomised defense
    assert passes_per_sample(cells["none / PGD10 / Linf 0.1"]) == 2 * 11 * 1 + 1  # EoT forced to 1
    assert passes_per_sample(cells["none / APGD5x2 / Linf 0.1"]) == 2 * 6 * 2 + 1
    assert passes_per_sample(cells["none / clean / clean"]) == 1


def test_measured_seconds_per_pass_scale_a_defense() -> None:
    """Stored rows of a resumed run: random_noise took 3x the seconds per pass of none."""
    plan = _plan()
    rows = []
    for c in plan.cells:
        per_pass = 3.0 if c.defense.display == "random_noise" else 1.0
        rows += [{"cell": c.id, "seconds": per_pass * passes_per_sample(c)} for _ in range(2)]
    factors = defense_factors(pd.DataFrame(rows), plan.cells)
    assert factors == pytest.approx({"none": 0.5, "random_noise": 1.5})
    weights = cell_weights(plan.cells, pd.DataFrame(rows))
    noisy = next(c for c in plan.cells if c.label == "random_noise / PGD10 / Linf 0.1")
    assert weights[noisy.id] == pytest.approx(1.5 * passes_per_sample(noisy))
    assert defense_factors(None, plan.cells) == {} and cell_weights(plan.cells)[noisy.id] == passes_per_sample(noisy)


def test_bar_advances_by_cost_and_counts_samples(tmp_path: Path) -> None:
    bar = ProgressBar({"cheap": 10, "dear": 10}, quiet=False, weights={"cheap": 1.0, "dear": 99.0})
    assert bar.total == 20 and bar.total_cost == 1000.0
    with bar.running():
        bar.advance(10, "cheap")
        task = bar._prog.tasks[0]
        assert task.completed == 10.0 and task.total == 1000.0  # half the samples, 1 % of the work
        bar.advance(5, "dear")
        assert task.completed == 505.0 and bar.done == 15
        assert task.fields["samples"] == "15/20 samples"


def test_a_fresh_run_learns_each_defense_cost_as_units_finish() -> None:
    """No stored rows: nothing is shown until a unit ends; then each defense is charged its measured seconds per
    pass, an unmeasured one the mean of the measured, the estimate spread over the workers."""
    from robbench.run.eta import LiveCost

    plan = _plan()
    cells = {c.label: c for c in plan.cells}
    units = {c.id: 10 for c in plan.cells}
    cost = LiveCost(plan.cells, units, None, workers=2)
    assert cost.seconds_left() is None
    cheap, dear = cells["none / PGD10 / Linf 0.1"], cells["random_noise / PGD10 / Linf 0.1"]
    cost.observe(cheap.id, 5, 5 * passes_per_sample(cheap) * 0.001)  # none: 1 ms per pass
    rate = dict.fromkeys(("none", "random_noise"), 0.001)  # random_noise not measured yet: the mean (none's)
    want = sum(n * passes_per_sample(c) * rate[c.defense.display] for c, n in ((c, units[c.id]) for c in plan.cells))
    want -= 5 * passes_per_sample(cheap) * 0.001
    assert cost.seconds_left() == pytest.approx(want / 2)
    cost.observe(dear.id, 2, 2 * passes_per_sample(dear) * 0.010)  # random_noise: 10 ms per pass
    assert cost.rate("random_noise") == pytest.approx(0.010) and cost.rate("none") == pytest.approx(0.001)
    left = {c.id: units[c.id] for c in plan.cells}
    left[cheap.id] -= 5
    left[dear.id] -= 2
    want = sum(
        left[c.id] * passes_per_sample(c) * (0.010 if c.defense.display == "random_noise" else 0.001)
        for c in plan.cells
    )
    assert cost.seconds_left() == pytest.approx(want / 2)


def test_the_bar_shows_the_live_estimate() -> None:
    from robbench.run.eta import LiveCost

    plan = _plan()
    units = {c.id: 4 for c in plan.cells}
    bar = ProgressBar(units, quiet=False, cost=LiveCost(plan.cells, units))
    with bar.running():
        task = bar._prog.tasks[0]
        assert task.fields["left"] == "time left: measuring"
        first = plan.cells[0]
        bar.advance(4, first.id, seconds=4 * passes_per_sample(first) * 2.0)  # 2 s per pass
        want = sum(4 * passes_per_sample(c) * 2.0 for c in plan.cells[1:])
        m, s = divmod(round(want), 60)
        assert task.fields["left"] == (f"~{m // 60}:{m % 60:02d}:{s:02d} left" if m >= 60 else f"~{m}:{s:02d} left")
