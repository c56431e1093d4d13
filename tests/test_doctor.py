"""`robbench doctor` through the CLI: versions, device, data sets, zoo with hash status, extras, plugins."""

from __future__ import annotations

import importlib.metadata as md
import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from robbench.cli.app import app
from robbench.doctor import EXTRAS, SECTIONS
from robbench.zoo import get_recipe, load_model

runner = CliRunner()


@pytest.fixture
def zoo(tmp_path: Path, zoo_dir: Path) -> Path:
    """A zoo with one good checkpoint, one whose bytes changed, and one unreadable manifest."""
    load_model("digits-cnn", zoo_dir=zoo_dir, quiet=True)
    key = get_recipe("digits-cnn").key
    z = tmp_path / "zoo"
    z.mkdir()
    for ext in (".pt", ".json"):
        shutil.copy(zoo_dir / f"{key}{ext}", z / f"{key}{ext}")
        shutil.copy(zoo_dir / f"{key}{ext}", z / f"tampered-0000000000{ext}")
    with open(z / "tampered-0000000000.pt", "ab") as fh:
        fh.write(b"x")
    (z / "broken-1111111111.json").write_text("{not json")
    return z


def _doctor(*args: str) -> list[dict[str, str]]:
    res = runner.invoke(app, ["doctor", "--json", *args])
    assert res.exit_code == 0, res.output
    findings: list[dict[str, str]] = json.loads(res.output)
    return findings


def _get(findings: list[dict[str, str]], section: str, name: str) -> dict[str, str]:
    return next(f for f in findings if f["section"] == section and f["name"] == name)


def test_doctor_reports_every_section(zoo: Path, tmp_path: Path) -> None:
    findings = _doctor("--zoo-dir", str(zoo), "--data-dir", str(tmp_path / "no-data"))
    assert {f["section"] for f in findings} == set(SECTIONS)
    assert _get(findings, "versions", "torch")["detail"] == torch.__version__
    assert _get(findings, "versions", "pyarrow")["status"] == "ok"
    cuda = _get(findings, "device", "cuda")
    assert cuda["status"] == ("ok" if torch.cuda.is_available() else "info" if not torch.version.cuda else "missing")
    assert "robbench run would use" in _get(findings, "device", "cpu threads")["detail"]
    # data sets: digits ships with scikit-learn; mnist in an empty --data-dir is missing, with the fix
    assert _get(findings, "datasets", "digits")["status"] == "ok"
    mnist = _get(findings, "datasets", "mnist")
    assert mnist["status"] == "missing" and "no-data" in mnist["detail"] and mnist["fix"]
    # zoo: hash status per checkpoint, untrained recipes listed with the command to train them
    key = get_recipe("digits-cnn").key
    assert _get(findings, "zoo", key)["status"] == "ok" and "sha256 verified" in _get(findings, "zoo", key)["detail"]
    tampered = _get(findings, "zoo", "tampered-0000000000")
    assert tampered["status"] == "bad" and "sha256 mismatch" in tampered["detail"] and "zoo train" in tampered["fix"]
    assert _get(findings, "zoo", "broken-1111111111")["status"] == "bad"
    assert "robbench zoo train digits-cnn-surrogate" in _get(findings, "zoo", "digits-cnn-surrogate")["fix"]
    # extras: installed or not, exactly as importlib.metadata says, with the pip extra to install
    for dist, extra in EXTRAS.items():
        f = _get(findings, "extras", dist)
        try:
            version: str | None = md.version(dist)
        except md.PackageNotFoundError:
            version = None
        if version is not None:
            assert f["status"] == "ok" and f["detail"] == version
        else:
            assert f["status"] == "missing" and f["fix"] == f"pip install 'robbench[{extra}]'"
    assert _get(findings, "plugins", "robbench")["status"] == "ok"


def test_doctor_human_output_and_no_verify(zoo: Path) -> None:
    res = runner.invoke(app, ["doctor", "--zoo-dir", str(zoo)])
    assert res.exit_code == 0, res.output
    for section in SECTIONS:
        assert f"\n{section}\n" in f"\n{res.output}"
    assert "BAD" in res.output and "fix:" in res.output
    quick = _doctor("--zoo-dir", str(zoo), "--no-verify")
    assert _get(quick, "zoo", "tampered-0000000000")["status"] == "info"  # not hashed
