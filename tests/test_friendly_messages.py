"""Messages a new user meets first (issue 17 items 12 and 13): key typos get "did you mean", a repeated
threat is named with its line, and budgets print the way papers write them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from robbench.cli.app import app
from robbench.core.budget import format_eps
from tests.conftest import base_suite

runner = CliRunner()


def _error(path: Path) -> str:
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, res.output
    return lines[0]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: s.update(sede=0), "suite.sede: unknown key; did you mean 'seed'?"),
        (lambda s: s["data"].update(n_sampels=8), "suite.data.n_sampels: unknown key; did you mean 'n_samples'?"),
        (lambda s: s["defenses"][0].update(parms={}), "suite.defenses.0.parms: unknown key; did you mean 'params'?"),
        (lambda s: s["threats"][0].update(epsilon=1), "suite.threats.0.epsilon: unknown key; did you mean 'eps'?"),
        (lambda s: s["attacks"][1]["params"].update(stpes=3), "params.stpes: unknown key; did you mean 'steps'?"),
        (lambda s: s["evaluation"].update(draw=4), "suite.evaluation.draw: unknown key; did you mean 'draws'?"),
        (lambda s: s["threats"][0].update(zz=1), "suite.threats.0.zz: unknown key (known keys: eps, norm)"),
    ],
    ids=["top", "data", "defense", "threat", "attack-params", "evaluation", "no-close-key"],
)
def test_key_typos_get_a_suggestion(tmp_path: Path, edit, expected: str) -> None:  # type: ignore[no-untyped-def]
    suite = base_suite()
    edit(suite)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    assert expected in _error(path)


def test_a_repeated_threat_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    text = yaml.safe_dump(base_suite(threats=[]), sort_keys=False).replace("threats: []\n", "threats:\n")
    lines = text.splitlines()
    at = lines.index("threats:")
    lines[at + 1 : at + 1] = ["- {norm: linf, eps: 8/255}", "- {norm: l2, eps: 0.5}", "- {norm: linf, eps: 8/255}"]
    path.write_text("\n".join(lines) + "\n")
    line = _error(path)
    assert f"(line {at + 4})" in line and "threats.2 (linf eps 8/255) repeats threats.0" in line, line


@pytest.mark.parametrize(
    ("eps", "shown"),
    [
        (8 / 255, "8/255"),
        (0.5 / 255, "0.5/255"),
        (2.5 / 255, "2.5/255"),
        (0.1, "0.1"),
        (0.025, "0.025"),
        (1.5, "1.5"),
        (10.0, "10"),
        (0.0123456, "0.0123456"),
    ],
)
def test_budgets_print_as_papers_write_them(eps: float, shown: str) -> None:
    assert format_eps(eps) == shown


def test_a_budget_written_twice_in_two_forms_is_refused_naming_both(tmp_path: Path) -> None:
    """Issue 26 item 4: 8/255 and 0.031372549 are one budget (they differ by 2e-11)."""
    path = tmp_path / "s.yaml"
    doc = base_suite(threats=[{"norm": "linf", "eps": "8/255"}, {"norm": "linf", "eps": 0.031372549}])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    line = _error(path)
    assert "0.031372549" in line and "8/255" in line and "written twice" in line and "(line " in line
    doc["threats"][1] = {"norm": "l2", "eps": 0.031372549}  # another norm: a different threat
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert runner.invoke(app, ["validate", str(path)]).exit_code == 0
