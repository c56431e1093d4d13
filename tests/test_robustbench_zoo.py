"""RobustBench's classifiers (issue 15): DeepMind's WRN-70-16 (``dm_wrn``) against the official code, its files
loading with ``format: robustbench``, and the model-zoo adapter (``robustbench: {name: ...}``).

The real ``robustbench`` package is NOT installed here (it needs torchvision, gigabytes). The adapter is tested
against a stand-in injected as ``sys.modules["robustbench"]`` that follows the real ``robustbench.utils.load_model``
(model_name, model_dir, dataset, threat_model): it builds the entry's architecture, downloads the file when it is
missing (here: records the attempt and fails), reads ``model_dir/<dataset>/<threat_model>/<name>.pt`` with
``torch.load`` and strips ``module.``. robbench's own architecture stands in for RobustBench's."""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from robbench.cli.app import app
from robbench.core.seeding import generator
from robbench.errors import CheckpointError
from robbench.models import build_model, init_weights
from robbench.zoo import check_model_ref, load_model
from robbench.zoo.robustbench_zoo import INSTALL_HINT
from tests.conftest import base_suite

runner = CliRunner()
#: a DeepMind WideResNet for 8x8 one-channel digits
TINY: dict[str, Any] = {"depth": 10, "width": 1, "in_channels": 1, "mean": [0.5], "std": [0.5]}
NAME = "Tiny2020Digits_10_1"
#: sha256 of "name [shape]" lines, in state_dict order, of RobustBench's DMWideResNet(num_classes=10, depth=70,
#: width=16, activation_fn=Swish), robustbench/model_zoo/architectures/dm_wide_resnet.py, built on the meta device
OFFICIAL_DIGEST = "726b74ae3b758334ac7391243f3501133e77897f556e6d9b6d40c552aa16e45a"


def test_wrn_70_16_matches_the_official_code() -> None:
    """Gowal2020Uncovering_70_16(_extra) / Rebuffi2021Fixing_70_16_*: 266,796,506 parameters (RobustBench's own
    DMWideResNet; the papers say "WRN-70-16" without a count), 407 state-dict entries with the official names."""
    with torch.device("meta"):
        model = build_model("dm_wrn")
    assert sum(p.numel() for p in model.parameters()) == 266_796_506
    sd = model.state_dict()
    lines = "\n".join(f"{k} {list(v.shape)}" for k, v in sd.items())
    assert len(sd) == 407 and hashlib.sha256(lines.encode()).hexdigest() == OFFICIAL_DIGEST


def _write(path: Path, wrap: str = "plain") -> torch.nn.Module:
    model = init_weights(build_model("dm_wrn", **TINY), generator(5)).eval()
    sd = model.state_dict()
    if wrap == "module":
        sd = {"state_dict": {f"module.{k}": v for k, v in sd.items()}}
    elif wrap == "model":
        sd = {f"model.{k}": v for k, v in sd.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)
    return model


@pytest.mark.parametrize("wrap", ["plain", "module", "model"])
def test_robustbench_files_load_into_dm_wrn(tmp_path: Path, wrap: str) -> None:
    path = tmp_path / f"{NAME}.pt"
    original = _write(path, wrap)
    model = load_model({"arch": "dm_wrn", "config": TINY, "checkpoint": str(path), "format": "robustbench"})
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(model(x), original(x))


@pytest.fixture
def fake_robustbench(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    downloads: list[str] = []

    def load_model(model_name: str, model_dir: str = "./models", dataset: str = "cifar10", threat_model: str = "Linf"):  # type: ignore[no-untyped-def]
        path = Path(model_dir) / dataset / threat_model / f"{model_name}.pt"
        model = build_model("dm_wrn", **TINY)
        if not path.is_file():
            downloads.append(model_name)
            raise OSError("no internet (the stand-in's gdrive download)")
        ckpt = torch.load(path, map_location="cpu")
        sd = ckpt.get("state_dict", ckpt)
        model.load_state_dict({k.replace("module.", ""): v for k, v in sd.items()})
        return model.eval()

    pkg, utils = types.ModuleType("robustbench"), types.ModuleType("robustbench.utils")
    utils.load_model = load_model  # type: ignore[attr-defined]
    pkg.utils = utils  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "robustbench", pkg)
    monkeypatch.setitem(sys.modules, "robustbench.utils", utils)
    return downloads


def _ref(models: Path, name: str = NAME, **extra: Any) -> dict[str, Any]:
    return {
        "robustbench": {"name": name, "dataset": "cifar10", "threat_model": "Linf", "model_dir": str(models)},
        **extra,
    }


def test_the_zoo_adapter_loads_local_files_only(tmp_path: Path, fake_robustbench: list[str]) -> None:
    models = tmp_path / "models"
    path = models / "cifar10" / "Linf" / f"{NAME}.pt"
    original = _write(path, "module")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    model = load_model(_ref(models, sha256=sha))
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(model(x), original(x)) and not any(p.requires_grad for p in model.parameters())
    with pytest.raises(CheckpointError, match=r"'Missing2021_70_16' is not in .*robbench downloads nothing") as err:
        check_model_ref(_ref(models, "Missing2021_70_16"), "classifier")
    assert "robustbench.utils.load_model('Missing2021_70_16'" in str(err.value.hint)
    assert fake_robustbench == []  # the stand-in's download was never reached
    with pytest.raises(CheckpointError, match="fails its hash"):
        load_model(_ref(models, sha256="0" * 64))


def test_a_zoo_file_carrying_code_is_refused_before_robustbench_opens_it(
    tmp_path: Path, fake_robustbench: list[str]
) -> None:
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self) -> Any:
            return os.system, (f"touch {marker}",)

    path = tmp_path / "models" / "cifar10" / "Linf" / f"{NAME}.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps({"state_dict": Evil()}, protocol=4))
    with pytest.raises(CheckpointError, match="not a weights-only checkpoint"):
        load_model(_ref(tmp_path / "models"))
    assert not marker.exists()


def test_without_the_package_the_reference_names_the_alternative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "robustbench", None)  # import fails, as when it is not installed
    doc = base_suite(classifier=_ref(tmp_path / "models"), attacks=[{"id": "clean", "name": "clean"}])
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(doc))
    res = runner.invoke(app, ["validate", str(suite)])
    assert res.exit_code == 2 and "needs the robustbench package" in res.output, res.output
    assert "format: robustbench" in INSTALL_HINT and "dm_wrn" in res.output


def test_a_suite_runs_on_a_robustbench_classifier(tmp_path: Path, zoo_dir: Path, fake_robustbench: list[str]) -> None:
    models = tmp_path / "models"
    _write(models / "cifar10" / "Linf" / f"{NAME}.pt")
    doc = base_suite(classifier=_ref(models), data={"dataset": "digits", "split": "test", "n_samples": 8})
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(doc))
    out = tmp_path / "res"
    res = runner.invoke(
        app, ["run", str(suite), "--out", str(out), "--zoo-dir", str(zoo_dir), "--quiet", "--no-checks"]
    )
    assert res.exit_code == 0, res.output
    assert len(list((out / "rows").iterdir())) == 2 and fake_robustbench == []


@pytest.mark.parametrize(
    ("defense", "field", "extra"),
    [
        ("diffpure", "diffusion_model", {}),
        ("rdc", "diffusion_model", {}),
        ("pursamere", "score_model", {"eps_pur": 0.1}),
    ],
)
def test_a_robustbench_entry_is_refused_where_a_generative_model_belongs(
    tmp_path: Path, defense: str, field: str, extra: dict[str, Any]
) -> None:
    doc = base_suite(
        defenses=[{"name": defense, "params": {field: _ref(tmp_path / "models"), **extra}}],
        attacks=[{"id": "clean", "name": "clean"}],
    )
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(doc))
    res = runner.invoke(app, ["validate", str(suite)])
    assert res.exit_code == 2 and f"RobustBench entry '{NAME}' is a classifier" in res.output, res.output
