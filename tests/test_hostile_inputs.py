"""Twenty-one hostile inputs (issue 26 item 5): suite files, CLI values, results folders and checkpoints.
Each is refused with exit 2 and one message (an ``error:`` line and a ``fix:`` line), and nothing is
written: no results folder, no report file, no change to the folder read."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from robbench.cli.app import app
from tests.conftest import base_suite

runner = CliRunner()


def _refused(args: list[str], *needles: str) -> str:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    fixes = [ln for ln in res.output.splitlines() if ln.strip().startswith("fix:")]
    assert len(errors) == 1 and len(fixes) == 1, res.output
    for needle in needles:
        assert needle in res.output, res.output
    assert "Traceback" not in res.output
    return res.output


def _tree(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*") if p.is_file())


def _dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def _suite_with(edit: Callable[[dict[str, Any]], None]) -> str:
    doc = base_suite()
    edit(doc)
    return _dump(doc)


def _eps(value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda s: s.update(threats=[{"norm": "linf", "eps": value}])


def _ckpt(path: str, **extra: Any) -> Callable[[dict[str, Any]], None]:
    return lambda s: s.update(classifier={"arch": "small_cnn", "checkpoint": path, **extra})


SUITES: list[tuple[str, str, str]] = [  # (id, suite text or a marker, expected words)
    ("empty-file", "", "a suite must be a YAML mapping"),
    ("norms-without-threat", _suite_with(lambda s: s["attacks"][1].update(norms=["l2"])), "would compute nothing"),
    ("zero-samples", _suite_with(lambda s: s["data"].update(n_samples=0)), "n_samples a value >= 1"),
    ("seed-not-a-number", _suite_with(lambda s: s.update(seed="x")), "seed as a whole number"),
    ("eps-divides-by-zero", _suite_with(_eps("8/0")), "divides by zero"),
    ("eps-nan", _suite_with(_eps(0.1)).replace("eps: 0.1", "eps: .nan"), "positive and finite"),
    ("unknown-split", _suite_with(lambda s: s["data"].update(split="validation")), "no split 'validation'"),
    ("tab-indent", "name: t\n\tseed: 0\n", "YAML syntax error"),
    ("unknown-defense-id", _suite_with(lambda s: s["attacks"][1].update(defenses=["nope"])), "unknown defense 'nope'"),
    ("sha256-not-hex", _suite_with(_ckpt("m.pt", sha256="xyz")), "not a SHA-256 digest"),
    ("checkpoint-folder", _suite_with(_ckpt(".")), "is a folder, not a file"),
]


@pytest.mark.parametrize(("text", "needle"), [s[1:] for s in SUITES], ids=[s[0] for s in SUITES])
def test_hostile_suites_are_refused_and_nothing_is_written(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    _refused(["validate", str(path)], needle)
    _refused(["run", str(path), "--out", str(out), "--quiet"], needle)
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"", "is empty (0 bytes)"), (b"<html>not found</html>", "is not a torch checkpoint")],
    ids=["empty-checkpoint", "web-page-as-checkpoint"],
)
def test_hostile_checkpoints_are_refused_naming_the_file(tmp_path: Path, content: bytes, needle: str) -> None:
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(content)
    path = tmp_path / "suite.yaml"
    path.write_text(_suite_with(_ckpt(str(ckpt))))
    out = tmp_path / "out"
    _refused(["run", str(path), "--out", str(out), "--quiet"], needle, str(ckpt))
    assert not out.exists()


def test_a_folder_as_the_suite_path(tmp_path: Path) -> None:
    _refused(["validate", str(tmp_path)], "is a folder")


def test_an_unknown_device(tmp_path: Path, write_suite: Any) -> None:
    out = tmp_path / "out"
    _refused(["run", str(write_suite(base_suite())), "--device", "tpu", "--out", str(out)], "unknown device 'tpu'")
    assert not out.exists()


def test_out_is_an_existing_file(tmp_path: Path, write_suite: Any) -> None:
    out = tmp_path / "taken"
    out.write_text("keep me")
    _refused(["run", str(write_suite(base_suite())), "--out", str(out)], "is not a directory")
    assert out.read_text() == "keep me"


def test_an_unknown_table_format(tmp_path: Path) -> None:
    _refused(["table", str(tmp_path), "--format", "xml"], "unknown --format 'xml'")


def _results(tmp_path: Path, manifest: str | None) -> Path:
    res = tmp_path / "res"
    (res / "rows").mkdir(parents=True)
    if manifest is not None:
        (res / "manifest.json").write_text(manifest)
    return res


@pytest.mark.parametrize(
    ("command", "manifest", "needle"),
    [
        ("table", "{not json", "manifest.json is corrupt"),
        ("report", None, "has no manifest.json"),
        ("compare", json.dumps({"a": 1}), "manifest.suite_name: Field required"),
        ("table", "missing-folder", "does not exist"),
    ],
    ids=["corrupt-manifest", "rows-without-manifest", "manifest-without-fields", "missing-folder"],
)
def test_hostile_results_folders_are_refused_and_left_as_they_were(
    tmp_path: Path, command: str, manifest: str | None, needle: str
) -> None:
    res = tmp_path / "missing" if manifest == "missing-folder" else _results(tmp_path, manifest)
    before = _tree(tmp_path)
    args = {"table": [str(res)], "report": [str(res), "--out", str(tmp_path / "r.html")], "compare": [str(res)] * 2}
    _refused([command, *args[command]], needle)
    assert _tree(tmp_path) == before
