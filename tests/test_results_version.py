"""Rows and the code that made them (issue 25 item 4): every shard is stamped with the robbench version,
results version and git SHA; a resume never reuses rows of another results version; the manifest lists
every code version its rows came from; a golden digest of a tiny suite's rows fails when rows change
and :data:`robbench.RESULTS_VERSION` did not.

Regenerate the golden digest after a deliberate results-version bump with
``python -m tests.test_results_version``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch
import yaml
from typer.testing import CliRunner

from robbench import RESULTS_VERSION
from robbench.cli import app
from robbench.models.small_cnn import SmallCNN
from robbench.results.load import load_results
from robbench.results.store import CODE_KEY, ResultsDir
from tests.conftest import base_suite

runner = CliRunner()
GOLDEN = Path(__file__).parent / "golden_rows.json"
CONFIG = {"in_channels": 1, "num_classes": 10, "width": 4}


def _checkpoint(path: Path) -> Path:
    """A small CNN with weights drawn from a fixed generator (no training: the same bits everywhere)."""
    gen = torch.Generator().manual_seed(1234)
    model = SmallCNN(**CONFIG)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    torch.save(model.state_dict(), path)
    return path


def _golden_suite(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = base_suite(
        classifier={"arch": "small_cnn", "checkpoint": str(_checkpoint(folder / "cnn.pt")), "config": CONFIG},
        defenses=[{"name": "none"}, {"name": "random_noise", "params": {"sigma": 0.2}}],
        attacks=[
            {"id": "clean", "name": "clean"},
            {"id": "PGD3", "name": "pgd", "params": {"steps": 3}},
            {
                "id": "BPDA3-det",
                "name": "pgd",
                "params": {"steps": 3},
                "gradient": "bpda",
                "randomness": "det",
                "defenses": ["random_noise"],
            },
            {"id": "gPGD3", "name": "pgd", "params": {"steps": 3}, "gradient": "classifier"},
        ],
        data={"dataset": "digits", "split": "test", "n_samples": 12},
    )
    path = folder / "golden.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _run(suite: Path, out: Path) -> str:
    res = runner.invoke(app, ["run", str(suite), "--out", str(out), "--quiet", "--table", "none", "--threads", "1"])
    assert res.exit_code == 0, res.output
    return res.output


def row_digest(out: Path) -> str:
    """A digest of what the rows say (predictions and correctness per draw), not of ids or timings."""
    rows = load_results(out).rows
    keep = ["defense", "attack", "threat", "sample_id", "draws", "clean_pred", "adv_pred", "in_ball"]
    lines = []
    for r in rows.sort_values(["defense", "attack", "threat", "sample_id"]).to_dict("records"):
        rec: dict[str, Any] = {k: r[k] for k in keep}
        rec["adv"] = [bool(v) for v in r["adv_correct_draws"]]
        rec["clean"] = [bool(v) for v in r["clean_correct_draws"]]
        lines.append(json.dumps(rec, sort_keys=True, default=str))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def test_golden_rows_change_only_with_the_results_version(tmp_path: Path) -> None:
    golden = json.loads(GOLDEN.read_text())
    out = tmp_path / "res"
    _run(_golden_suite(tmp_path / "s"), out)
    digest = row_digest(out)
    assert golden["results_version"] == RESULTS_VERSION, (
        "RESULTS_VERSION changed: regenerate the golden digest with `python -m tests.test_results_version`"
    )
    assert digest == golden["digest"], (
        "the rows of the golden suite changed but RESULTS_VERSION did not: bump robbench.RESULTS_VERSION "
        "(stored rows must not be reused across the change), then regenerate the golden digest"
    )


def test_every_shard_is_stamped_and_the_manifest_lists_the_code(tmp_path: Path) -> None:
    out = tmp_path / "res"
    _run(_golden_suite(tmp_path / "s"), out)
    rd = ResultsDir(out)
    for path in rd.shard_paths():
        stamp = json.loads(pq.read_schema(path).metadata[CODE_KEY.encode()])
        assert stamp["results_version"] == RESULTS_VERSION and "robbench" in stamp and "git_sha" in stamp
    manifest = load_results(out).manifest
    assert [v["results_version"] for v in manifest.code_versions] == [RESULTS_VERSION]


def _restamp(path: Path, version: int) -> None:
    table = pq.read_table(path)
    meta = dict(table.schema.metadata or {})
    meta[CODE_KEY.encode()] = json.dumps({"results_version": version}).encode()
    pq.write_table(table.replace_schema_metadata(meta), path)


def test_a_resume_recomputes_rows_of_another_results_version(tmp_path: Path) -> None:
    suite, out = _golden_suite(tmp_path / "s"), tmp_path / "res"
    _run(suite, out)
    before = row_digest(out)
    rd = ResultsDir(out)
    stale = rd.shard_paths()[0]
    _restamp(stale, RESULTS_VERSION - 1)
    n_stale = pq.read_metadata(stale).num_rows
    total = len(load_results(out).rows)
    assert n_stale > 0 and sum(len(v) for v in rd.done_keys().values()) == total - n_stale
    output = _run(suite, out)
    # the stale shard was set aside (rows/.stale/) and its rows recomputed; the rest was reused
    assert rd.shard_code(stale)["results_version"] == RESULTS_VERSION  # rewritten by the current code
    assert rd.shard_code(out / "rows" / ".stale" / stale.parent.name / stale.name)["results_version"] != RESULTS_VERSION
    assert sum(len(v) for v in rd.done_keys().values()) == total
    assert row_digest(out) == before
    assert [v["results_version"] for v in load_results(out).manifest.code_versions] == [RESULTS_VERSION]
    assert "results version" in output


if __name__ == "__main__":  # regenerate the golden digest (after a deliberate results-version bump)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        res = Path(tmp) / "res"
        _run(_golden_suite(Path(tmp) / "s"), res)
        GOLDEN.write_text(json.dumps({"results_version": RESULTS_VERSION, "digest": row_digest(res)}, indent=2) + "\n")
        print(GOLDEN.read_text())
