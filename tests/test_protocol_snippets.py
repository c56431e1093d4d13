"""The protocol snippet of suites/protocols.md runs on digits: every protocol, every norm it takes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from robbench.api import run, table
from robbench.results.store import ResultsDir
from tests.conftest import ROOT, base_suite

DIGITS_EPS = {"linf": 0.1, "l2": 1.0, "l1": 4.0}


def snippet() -> dict[str, Any]:
    text = (ROOT / "suites" / "protocols.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1
    doc: dict[str, Any] = yaml.safe_load(blocks[0])
    return doc


def test_snippet_has_the_papers_protocols_and_budgets() -> None:
    doc = snippet()
    ids = [a["id"] for a in doc["attacks"]]
    assert ids == [
        "clean",
        "gPGD20",
        "BPDA20-det",
        "BPDA200-det",
        "BPDA200-EoT20",
        "PGD100-EoT20-full",
        "AA-standard",
        "AA-rand",
        "square",
        "transfer-PGD20",
    ]
    assert doc["threats"] == [{"norm": "linf", "eps": "8/255"}, {"norm": "l2", "eps": 0.5}, {"norm": "l1", "eps": 12}]


def _quick(attack: dict[str, Any]) -> dict[str, Any]:
    """The same protocol at digits scale: a few steps, small EoT, cheap AutoAttack, digits surrogate."""
    a = dict(attack)
    p = dict(a.get("params") or {})
    if a["name"] == "pgd":
        p["steps"] = min(p.get("steps", 20), 2)
        if "step_size" in p:
            p["step_size"] = 0.05
    if a["name"] == "autoattack":
        p.update(apgd_iter=2, fab_iter=2, square_queries=5, targets=2, eot_iter=2)
    if a["name"] == "square":
        p["n_queries"] = 5
    a["params"] = p
    if a.get("eot", 1) > 1:
        a["eot"] = 2
    if "surrogate" in a:
        a["surrogate"] = "digits-cnn-surrogate"
    return a


def test_every_protocol_runs_on_digits(write_suite, tmp_path: Path, zoo_dir) -> None:  # type: ignore[no-untyped-def]
    doc = snippet()
    suite = base_suite(
        data={"dataset": "digits", "n_samples": 3},
        threats=[{"norm": t["norm"], "eps": DIGITS_EPS[t["norm"]]} for t in doc["threats"]],
        defenses=[
            {"name": "none", "id": "undefended"},
            {"name": "random_noise", "id": "purifier", "params": {"sigma": 0.1}},
        ],
        attacks=[_quick(a) for a in doc["attacks"]],
        evaluation={"batch_size": 3, "draws": 2, "overrides": ["few-draws"]},
    )
    out = tmp_path / "res"
    report = run(write_suite(suite), out=out, quiet=True, checks=False, threads=1)
    assert not report.failures
    rows = ResultsDir(out).read_rows()
    assert rows.error.isna().all() and rows.in_ball.all()
    cells = set(zip(rows.defense, rows.attack, rows.norm, strict=True))
    for a in doc["attacks"]:
        defenses = a.get("defenses") or ["undefended", "purifier"]
        norms = ["none"] if a["name"] == "clean" else (a.get("norms") or ["linf", "l2", "l1"])
        for d in defenses:
            for n in norms:
                assert (d, a["id"], n) in cells, (d, a["id"], n)
    det = rows[(rows.attack == "BPDA20-det") & (rows.defense == "purifier")]
    assert set(det.randomness) == {"det"} and set(det.draws) == {2}  # judged on the draws, like fresh
    eot = rows[(rows.attack == "BPDA200-EoT20") & (rows.defense == "purifier")]
    assert set(eot.eot) == {2} and set(eot.draws) == {2}
    assert set(rows.loc[(rows.attack == "PGD100-EoT20-full") & (rows.defense == "undefended"), "eot"]) == {1}
    summary = table(out)
    assert set(summary.attack) >= {a["id"] for a in doc["attacks"]} | {"worst-case"}
