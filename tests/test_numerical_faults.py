"""Numerical faults through real runs of plugin components (tests/plugins/robbench_testplugin):

- a defense returning NaN/inf is reported per row with the defense named, the run continues and
  the other cells are untouched (exit 0, a warning);
- an attack returning an image outside its ball, outside [0, 1], or NaN fails loudly: rows flagged,
  counted not robust, exit 3 with a message naming the attack, also when the run is resumed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from robbench.run.faults import CONTAINMENT, NONFINITE_IMAGE, NONFINITE_LOGITS, fault_report, row_error
from tests.conftest import base_suite
from tests.rowtools import raw_rows, run_cli

N = 12


def _suite(tmp_path: Path, name: str, **kw: object) -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(
        yaml.safe_dump(base_suite(name=name, data={"dataset": "digits", "n_samples": N}, **kw), sort_keys=False)
    )
    return p


def _by(rows: list[dict], **match: str) -> list[dict]:  # type: ignore[type-arg]
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def test_nan_defense_is_reported_per_row_and_the_run_continues(
    tmp_path: Path, testplugin_path: Path, zoo_dir: Path
) -> None:
    suite = _suite(
        tmp_path,
        "nan",
        defenses=[
            {"name": "none"},
            {"name": "test_nan", "id": "nanpurify"},  # NaN image -> NaN logits and NaN gradients
            {"name": "test_nan", "id": "inflogits", "params": {"where": "logits", "value": "inf", "min_mean": 0.3}},
        ],
    )
    out = tmp_path / "out"
    res = run_cli(
        ["run", str(suite), "--out", str(out), "--quiet", "--table", "csv"], tmp_path, pythonpath=testplugin_path
    )
    assert res.returncode == 0, res.stderr
    warnings = [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")]
    assert any("defense 'nanpurify' (test_nan)" in w and f"for {N} of {N} samples" in w for w in warnings), res.stderr
    assert any("defense 'inflogits' (test_nan)" in w for w in warnings), res.stderr
    assert not any("'none'" in w for w in warnings)
    rows = raw_rows(out)
    assert len(rows) == 3 * 2 * N  # every cell completed
    for r in _by(rows, defense="nanpurify"):
        assert r["error"].startswith(NONFINITE_LOGITS) and "defense nanpurify" in r["error"], r["error"]
        assert r["clean_correct"] is False and r["adv_correct"] is False
    partial = _by(rows, defense="inflogits")
    flagged = [r for r in partial if r["error"]]
    assert 0 < len(flagged) < len(partial), "min_mean makes only some images non-finite"
    assert all(r["error"].startswith(NONFINITE_LOGITS) and "defense inflogits" in r["error"] for r in flagged)
    assert not any(r["adv_correct"] for r in flagged)  # a flagged row never counts as robust
    assert not any(r["clean_correct"] for r in flagged if "on the clean input" in r["error"])
    clean = _by(rows, defense="none")
    assert all(r["error"] is None for r in clean) and sum(r["clean_correct"] for r in clean) >= N - 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["warnings"]) == 4  # 2 defenses x 2 attacks
    assert "nanpurify" in res.stdout  # the table is printed, with its error count


def test_cheating_attacks_fail_loudly_and_keep_failing_on_resume(
    tmp_path: Path, testplugin_path: Path, zoo_dir: Path
) -> None:
    suite = _suite(
        tmp_path,
        "cheat",
        attacks=[
            {"id": "PGD", "name": "pgd", "params": {"steps": 3}},
            {"id": "cheat_ball", "name": "test_cheat", "params": {"mode": "ball"}},
            {"id": "cheat_box", "name": "test_cheat", "params": {"mode": "box"}},
            {"id": "cheat_nan", "name": "test_cheat", "params": {"mode": "nan"}},
        ],
    )
    out = tmp_path / "out"
    for attempt in ("first", "resumed"):
        res = run_cli(
            ["run", str(suite), "--out", str(out), "--quiet", "--table", "none"], tmp_path, pythonpath=testplugin_path
        )
        assert res.returncode == 3, (attempt, res.stderr)
        failed = [ln for ln in res.stderr.splitlines() if ln.startswith("failed:")]
        assert len(failed) == 3, (attempt, res.stderr)
        for attack in ("cheat_ball", "cheat_box", "cheat_nan"):
            assert any(f"attack '{attack}' (test_cheat)" in ln for ln in failed), (attack, res.stderr)
        assert not any("'PGD'" in ln for ln in failed)
    assert "0 rows computed" in res.stderr  # the resumed run reported the stored rows' faults
    rows = raw_rows(out)
    for attack, prefix in (("cheat_ball", CONTAINMENT), ("cheat_box", CONTAINMENT), ("cheat_nan", NONFINITE_IMAGE)):
        flagged = _by(rows, attack=attack)
        assert len(flagged) == N
        for r in flagged:
            assert r["error"].startswith(prefix) and f"attack {attack}" in r["error"], r["error"]
            assert r["in_ball"] is False and r["adv_correct"] is False  # never counted robust
    assert all(r["error"] is None and r["in_ball"] for r in _by(rows, attack="PGD"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and len(manifest["failures"]) == 3


@pytest.mark.parametrize(
    ("kw", "prefix"),
    [
        ({"image_finite": False, "clean_logits_finite": True}, NONFINITE_IMAGE),
        ({"image_finite": False, "clean_logits_finite": False}, NONFINITE_LOGITS),
        ({"in_ball": False}, CONTAINMENT),
        ({"adv_logits_finite": False}, NONFINITE_LOGITS),
        ({}, None),
    ],
)
def test_row_error_classification(kw: dict[str, bool], prefix: str | None) -> None:
    args = {
        "attack": "A",
        "defense": "D",
        "threat": "Linf 0.1",
        "image_finite": True,
        "in_ball": True,
        "clean_logits_finite": True,
        "adv_logits_finite": True,
        "norm": 0.2,
        **kw,
    }
    err = row_error(**args)  # type: ignore[arg-type]
    assert (err is None) if prefix is None else err.startswith(prefix)


def test_fault_report_counts_per_cell() -> None:
    import pandas as pd

    rows = pd.DataFrame(
        {
            "cell": ["c1"] * 3 + ["c2"] * 2,
            "attack": ["A"] * 5,
            "attack_name": ["a"] * 5,
            "defense": ["D"] * 5,
            "defense_name": ["d"] * 5,
            "error": [f"{CONTAINMENT} x", None, None, f"{NONFINITE_LOGITS} y", None],
        }
    )
    failures, warnings = fault_report(rows, {"c1": "D / A / Linf", "c2": "D / A / L2"})
    assert len(failures) == 1 and "D / A / Linf" in failures[0] and "1 of 3 samples" in failures[0]
    assert len(warnings) == 1 and "D / A / L2" in warnings[0] and "1 of 2 samples" in warnings[0]
