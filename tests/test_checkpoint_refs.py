"""Checkpoint references in suites (issue 17 items 4 and 12): `validate` loads a local checkpoint into
its architecture, so a file whose shapes do not fit is refused before anything is written; relative
checkpoint paths resolve against the suite file, not the current directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch
import yaml

from robbench.zoo import ZooStore, get_recipe, load_model
from tests.conftest import base_suite, cli_cmd, cli_env

SMALL_CNN = {"in_channels": 1, "num_classes": 10, "width": 32}


def _robbench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_cmd(*args), capture_output=True, text=True, cwd=cwd, env=cli_env())


def _digits_state(zoo_dir: Path) -> dict[str, torch.Tensor]:
    load_model("digits-cnn", zoo_dir=zoo_dir, quiet=True)
    state, _ = ZooStore(zoo_dir).load(get_recipe("digits-cnn").key)
    return state


def _suite(path: Path, checkpoint: str) -> Path:
    doc = base_suite(
        classifier={"arch": "small_cnn", "checkpoint": checkpoint, "config": SMALL_CNN},
        attacks=[{"id": "clean", "name": "clean"}],
    )
    doc["data"]["n_samples"] = 4
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_checkpoint_that_does_not_fit_its_architecture_fails_validation(tmp_path: Path, zoo_dir: Path) -> None:
    state = _digits_state(zoo_dir)
    name = next(k for k, v in state.items() if v.dim() == 4)  # a conv weight
    state[name] = torch.zeros(*state[name].shape[:-1], state[name].shape[-1] + 2)
    torch.save(state, tmp_path / "wrong.pt")
    suite = _suite(tmp_path / "s.yaml", str(tmp_path / "wrong.pt"))
    for cmd in (["validate", str(suite)], ["run", str(suite), "--out", str(tmp_path / "out")]):
        res = _robbench(*cmd, cwd=tmp_path)
        assert res.returncode == 2, res.stderr[-2000:]
        assert "does not match its architecture" in res.stderr and name in res.stderr, res.stderr[-2000:]
        assert "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


def test_relative_checkpoint_paths_resolve_against_the_suite_file(tmp_path: Path, zoo_dir: Path) -> None:
    (tmp_path / "suites").mkdir()
    torch.save(_digits_state(zoo_dir), tmp_path / "suites" / "cnn.pt")
    suite = _suite(tmp_path / "suites" / "s.yaml", "cnn.pt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = _robbench("validate", str(suite), cwd=elsewhere)
    assert res.returncode == 0, res.stderr[-2000:]
    res = _robbench(
        "run", str(suite), "--out", str(tmp_path / "out"), "--workers", "2", "--table", "none", cwd=elsewhere
    )
    assert res.returncode == 0, res.stderr[-2000:]
    # a missing relative file is named by its resolved path, so the user sees where it was looked for
    bad = _suite(tmp_path / "suites" / "bad.yaml", "nope/cnn.pt")
    res = _robbench("validate", str(bad), cwd=elsewhere)
    assert res.returncode == 2 and str(tmp_path / "suites" / "nope" / "cnn.pt") in res.stderr, res.stderr[-2000:]
