"""Safe loading: weights-only checkpoints with sha256, safe YAML, no code from suites, plugins only
through installed entry points, CIFAR batches through a restricted unpickler.

Every "malicious" file here would create a marker file if anything executed it; the tests check
that the marker never appears and that the error names the offending file.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from robbench.cli.app import app
from robbench.core import registry
from robbench.errors import CheckpointError, DataError
from robbench.zoo import ZooStore, get_recipe, load_model
from robbench.zoo.store import load_state_dict, sha256_file
from tests.conftest import base_suite

runner = CliRunner()
SMALL_CNN = {"in_channels": 1, "num_classes": 10, "width": 32}


class _Payload:
    """Pickles to a call of ``os.system`` that would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _errors(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith("error:")]


def _digits_state(zoo_dir: Path) -> dict[str, torch.Tensor]:
    load_model("digits-cnn", zoo_dir=zoo_dir, quiet=True)  # trained once per cache
    state, _ = ZooStore(zoo_dir).load(get_recipe("digits-cnn").key)
    return state


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    m = tmp_path / "PWNED"
    yield m
    assert not m.exists(), "a payload ran"


@pytest.mark.parametrize("fmt", ["pickle", "torch.save"])
def test_malicious_checkpoint_is_refused_without_running(
    fmt: str, tmp_path: Path, marker: Path, write_suite, zoo_dir
) -> None:  # type: ignore[no-untyped-def]
    evil = tmp_path / "evil.pt"
    blob = {"normalize.mean": _Payload(marker)}
    if fmt == "pickle":
        evil.write_bytes(pickle.dumps(blob))
    else:
        torch.save(blob, evil)
    with pytest.raises(CheckpointError, match=str(evil)):
        load_state_dict(evil)
    suite = write_suite(base_suite(classifier={"arch": "small_cnn", "checkpoint": str(evil), "config": SMALL_CNN}))
    out = tmp_path / "out"
    for args in (["validate", str(suite)], ["run", str(suite), "--out", str(out), "--quiet"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, res.output
        (line,) = _errors(res.output)
        assert "suite.classifier" in line and str(evil) in line and "not a weights-only checkpoint" in line, line
    assert not out.exists()


def test_checkpoint_sha256_is_verified_before_any_compute(tmp_path: Path, write_suite, zoo_dir: Path) -> None:  # type: ignore[no-untyped-def]
    ckpt = tmp_path / "cnn.pt"
    torch.save(_digits_state(zoo_dir), ckpt)
    good = sha256_file(ckpt)
    bad = "0" * 64
    ref = {"arch": "small_cnn", "checkpoint": str(ckpt), "config": SMALL_CNN}
    res = runner.invoke(app, ["validate", str(write_suite(base_suite(classifier=dict(ref, sha256=bad)), "bad.yaml"))])
    assert res.exit_code == 2
    (line,) = _errors(res.output)
    assert str(ckpt) in line and "fails its hash" in line, line
    ok = write_suite(
        base_suite(
            classifier=dict(ref, sha256=good),
            data={"dataset": "digits", "n_samples": 4},
            attacks=[{"id": "clean", "name": "clean"}],
        ),
        "good.yaml",
    )
    res = runner.invoke(app, ["run", str(ok), "--out", str(tmp_path / "out"), "--quiet", "--table", "none"])
    assert res.exit_code == 0, res.output


def test_tampered_zoo_checkpoint_stops_the_run_with_one_message(tmp_path: Path, write_suite, zoo_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """Zoo files are verified when loaded; a failure is fatal for the run (exit 2), not per-unit noise."""
    key = get_recipe("digits-cnn").key
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    for ext in (".pt", ".json"):
        shutil.copy(zoo_dir / f"{key}{ext}", zoo / f"{key}{ext}")
    raw = bytearray((zoo / f"{key}.pt").read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte
    (zoo / f"{key}.pt").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="fails its hash"):
        load_model("digits-cnn", zoo_dir=zoo, train_missing=False)
    out = tmp_path / "out"
    suite = write_suite(base_suite(data={"dataset": "digits", "n_samples": 8}))
    res = runner.invoke(app, ["run", str(suite), "--out", str(out), "--zoo-dir", str(zoo), "--quiet"])
    assert res.exit_code == 2, res.output
    (line,) = _errors(res.output)
    assert f"{key}.pt fails its hash" in line, line
    assert not list(out.glob("rows/*/*.parquet"))
    assert json.loads((out / "manifest.json").read_text())["status"] == "aborted"
    # a zoo manifest without a hash is never trusted
    manifest = json.loads((zoo / f"{key}.json").read_text())
    del manifest["sha256"]
    (zoo / f"{key}.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="records no sha256"):
        load_model("digits-cnn", zoo_dir=zoo, train_missing=False)


@pytest.mark.parametrize(
    "tagged",
    [
        "!!python/object/apply:os.system ['touch {m}']",
        "!!python/object/new:os.system ['touch {m}']",
        "!!python/name:os.system",
        "!!python/module:os",
        "!include /etc/passwd",
    ],
)
def test_yaml_tags_are_rejected_not_executed(tagged: str, tmp_path: Path, marker: Path) -> None:
    text = yaml.safe_dump(base_suite(), sort_keys=False).replace("name: t\n", f"name: {tagged.format(m=marker)}\n", 1)
    path = tmp_path / "s.yaml"
    path.write_text(text)
    res = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    assert res.exit_code == 2, res.output
    (line,) = _errors(res.output)
    assert "YAML tag" in line and "is not allowed" in line and "line 1" in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("defenses", [{"name": "os:system"}]),
        ("defenses", [{"name": "robbench.defenses.none:NoDefense"}]),
        ("attacks", [{"id": "x", "name": "this"}]),
        ("data", {"dataset": "antigravity", "n_samples": 4}),
        ("classifier", {"arch": "os:system", "checkpoint": __file__}),
    ],
)
def test_a_suite_cannot_import_code(field: str, value: Any, write_suite) -> None:  # type: ignore[no-untyped-def]
    """Names resolve only through installed entry points: a module path is just an unknown name."""
    before = set(sys.modules)
    res = runner.invoke(app, ["validate", str(write_suite(base_suite(**{field: value})))])
    assert res.exit_code == 2, res.output
    (line,) = _errors(res.output)
    assert "unknown" in line, line
    assert not {"this", "antigravity", "os:system"} & (set(sys.modules) - before)


def test_registry_holds_only_entry_points() -> None:
    for kind, reg in registry.REGISTRIES.items():
        for name, entry in reg.entries.items():
            assert entry.dist and entry.dist != "<unknown>", (kind, name)
            assert ":" in entry.value and not entry.value.startswith((".", "/"))


def _cifar_batch(path: Path, payload: Any = None, protocol: int = 2) -> None:
    import numpy as np

    data = np.arange(4 * 3072, dtype=np.uint8).reshape(4, 3072)
    batch = {b"data": data, b"labels": [0, 1, 2, 3], b"batch_label": b"test"}
    if payload is not None:
        batch[b"filenames"] = payload
    path.write_bytes(pickle.dumps(batch, protocol=protocol))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar_batches_use_a_restricted_unpickler(protocol: int, tmp_path: Path, marker: Path) -> None:
    """Batches load whatever pickle protocol wrote them; a payload inside is refused, naming the file."""
    from robbench.data.cifar10 import read_batch

    good = tmp_path / "test_batch"
    _cifar_batch(good, protocol=protocol)
    x, y = read_batch(good)
    assert x.shape == (4, 3, 32, 32) and y.tolist() == [0, 1, 2, 3]
    assert x.reshape(4, -1)[1, :5].tolist() == [0, 1, 2, 3, 4]  # 3072 % 256 == 0: row 1 starts at 0 again
    evil = tmp_path / "evil" / "test_batch"
    evil.parent.mkdir()
    _cifar_batch(evil, _Payload(marker), protocol=protocol)
    with pytest.raises(DataError, match=f"{evil}.*refusing to load posix.system"):
        read_batch(evil)
