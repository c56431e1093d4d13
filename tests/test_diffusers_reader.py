"""Public DDPM checkpoints in the diffusers layout (issue 15): folders written by the real ``diffusers``
package in the exact published layout (``config.json``, ``diffusion_pytorch_model.safetensors``,
``scheduler_config.json``) load through ``format: diffusers``; Ho et al.'s CIFAR-10 UNet has its published
size; a DiffPure suite runs on such a model; broken folders are refused at validation, nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from robbench.cli import app
from robbench.errors import CheckpointError
from robbench.models.diffusers_unet import TINY_UNET
from robbench.zoo import load_model
from tests.conftest import base_suite

diffusers = pytest.importorskip("diffusers")
runner = CliRunner()

#: google/ddpm-cifar10-32's UNet (Ho et al. 2020's CIFAR-10 model) and scheduler, as published
CIFAR10_UNET: dict[str, Any] = {
    "sample_size": 32,
    "in_channels": 3,
    "out_channels": 3,
    "layers_per_block": 2,
    "block_out_channels": [128, 256, 256, 256],
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "act_fn": "silu",
    "attention_head_dim": None,
    "center_input_sample": False,
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-06,
    "norm_num_groups": 32,
    "time_embedding_type": "positional",
}
SCHEDULER = {
    "_class_name": "DDPMScheduler",
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "clip_sample": True,
    "num_train_timesteps": 1000,
    "variance_type": "fixed_small",
}


def write_folder(folder: Path, unet: dict[str, Any], timesteps: int = 1000, pipeline: bool = False) -> Path:
    """A diffusers model folder with random weights, written by diffusers itself (its official layout)."""
    torch.manual_seed(0)  # test-only: the weights' values do not matter, the layout does
    model = diffusers.UNet2DModel(**unet)
    unet_dir = folder / "unet" if pipeline else folder
    model.save_pretrained(unet_dir, safe_serialization=True)
    sched_dir = folder / "scheduler" if pipeline else folder
    sched_dir.mkdir(parents=True, exist_ok=True)
    (sched_dir / "scheduler_config.json").write_text(json.dumps({**SCHEDULER, "num_train_timesteps": timesteps}))
    return folder


def test_ho_et_al_cifar10_unet_has_its_published_size_and_loads(tmp_path: Path) -> None:
    """Ho et al. 2020, Appendix B: "Our CIFAR10 model has 35.7 million parameters"."""
    folder = write_folder(tmp_path / "ddpm-cifar10-32", CIFAR10_UNET)
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "scheduler_config.json",
    ]
    model = load_model({"arch": "diffusers_unet", "checkpoint": str(folder), "format": "diffusers"})
    n = sum(p.numel() for p in model.parameters())
    assert n == 35_746_307 and round(n / 1e6, 1) == 35.7
    assert model.alphas_cumprod.shape == (1000,) and model.betas[0] == pytest.approx(1e-4)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32), torch.tensor([10]))
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()


def test_the_pipeline_layout_loads_too(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "pipe", TINY_UNET, timesteps=20, pipeline=True)
    model = load_model({"arch": "diffusers_unet", "checkpoint": str(folder), "format": "diffusers"})
    assert model.alphas_cumprod.shape == (20,)


def _suite(tmp_path: Path, folder: Path) -> Path:
    ref = {"arch": "diffusers_unet", "checkpoint": str(folder), "format": "diffusers"}
    doc = base_suite(
        defenses=[{"name": "diffpure", "params": {"diffusion_model": ref, "t_star": 0.2, "steps": 2}}],
        attacks=[
            {"id": "clean", "name": "clean"},
            {"id": "BPDA2-det", "name": "pgd", "params": {"steps": 2}, "gradient": "bpda", "randomness": "det"},
        ],
        data={"dataset": "digits", "n_samples": 4},
    )
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_diffpure_runs_on_a_diffusers_checkpoint(tmp_path: Path, zoo_dir: Path) -> None:
    folder = write_folder(tmp_path / "tiny", TINY_UNET, timesteps=20)
    out = tmp_path / "res"
    res = runner.invoke(
        app, ["run", str(_suite(tmp_path, folder)), "--out", str(out), "--zoo-dir", str(zoo_dir), "--quiet"]
    )
    assert res.exit_code == 0, res.output
    assert any((out / "rows").iterdir())


@pytest.mark.parametrize("damage", ["no-config", "no-scheduler", "no-weights", "truncated", "wrong-arch", "file"])
def test_broken_folders_are_refused_at_validation(tmp_path: Path, damage: str) -> None:
    folder = write_folder(tmp_path / "tiny", TINY_UNET, timesteps=20)
    weights = folder / "diffusion_pytorch_model.safetensors"
    expect = {
        "no-config": "has no config.json",
        "no-scheduler": "has no scheduler_config.json",
        "no-weights": "has no weights",
        "truncated": "not a readable safetensors file",
        "wrong-arch": "does not match",
        "file": "is not a folder",
    }[damage]
    if damage == "no-config":
        (folder / "config.json").unlink()
    elif damage == "no-scheduler":
        (folder / "scheduler_config.json").unlink()
    elif damage == "no-weights":
        weights.unlink()
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:200])
    elif damage == "wrong-arch":
        cfg = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**cfg, "block_out_channels": [8, 32]}))
    elif damage == "file":
        folder = weights
    with pytest.raises(CheckpointError, match=expect):
        load_model({"arch": "diffusers_unet", "checkpoint": str(folder), "format": "diffusers"})
    out = tmp_path / "never"
    res = runner.invoke(app, ["run", str(_suite(tmp_path, folder)), "--out", str(out), "--quiet"])
    assert res.exit_code == 2 and expect in res.output and not out.exists(), res.output
