"""guided-diffusion's ADM UNet (DiffPure's and GDMP's ImageNet model, issue 15): the architecture against the
official code at the published size, the official file layout (a plain state dict) loading weights-only, a
DiffPure suite on such a file, and bad files. Files are written here in the official layout, random weights."""

from __future__ import annotations

import hashlib
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
from robbench.zoo import check_checkpoint, load_model
from tests.conftest import base_suite

runner = CliRunner()
#: a small ADM for 8x8 one-channel images (digits), every block kind present
TINY: dict[str, Any] = {
    "image_size": 8, "in_channels": 1, "model_channels": 32, "channel_mult": [1, 2], "num_res_blocks": 1,
    "attention_ds": [2], "num_head_channels": 16, "timesteps": 20,
}  # fmt: skip

#: sha256 of "name [shape]" lines, in state_dict order, of guided-diffusion's own UNetModel from
#: script_util.create_model with 256x256_diffusion_uncond.pt's flags (github.com/openai/guided-diffusion README:
#: attention_resolutions 32,16,8, learn_sigma, num_channels 256, num_head_channels 64, num_res_blocks 2,
#: resblock_updown, use_scale_shift_norm); built on the meta device (docs/checkpoints.md)
OFFICIAL_DIGEST = "d7604d990d6bdf61ece348d470083047f95ab1d189464262d78d492af066e2ec"


def test_published_size_matches_the_official_code() -> None:
    """256x256_diffusion_uncond: 552,814,086 parameters, and 553,838,086 with the 1000-class embedding (both the
    official code's counts; the README states none)."""
    with torch.device("meta"):
        model = build_model("adm_unet")
        cond = build_model("adm_unet", num_classes=1000)
    assert sum(p.numel() for p in model.parameters()) == 552_814_086
    assert sum(p.numel() for p in cond.parameters()) == 553_838_086
    sd = model.state_dict()
    lines = "\n".join(f"{k} {list(v.shape)}" for k, v in sd.items())
    assert len(sd) == 566 and hashlib.sha256(lines.encode()).hexdigest() == OFFICIAL_DIGEST


def _write(path: Path, **config: Any) -> torch.nn.Module:
    model = init_weights(build_model("adm_unet", **{**TINY, **config}), generator(3))
    torch.save(model.state_dict(), path)  # guided-diffusion's train_util saves the state dict itself
    return model


def test_official_layout_loads_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "256x256_diffusion_uncond.pt"
    original = _write(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    model = load_model({"arch": "adm_unet", "config": TINY, "checkpoint": str(path), "sha256": sha})
    x, t = torch.rand(2, 1, 8, 8) * 2 - 1, torch.tensor([0, 19])
    with torch.no_grad():
        full, eps = model.network(x, t), model(x, t)
    assert full.shape == (2, 2, 8, 8) and torch.equal(eps, full[:, :1])  # learn_sigma: eps first, then the variance
    assert torch.equal(eps, original(x, t)) and eps.abs().sum() > 0
    assert model.betas.shape == (20,) and float(model.betas[0]) == pytest.approx(1e-4 * 1000 / 20)


def test_wrong_architecture_and_broken_files_are_named(tmp_path: Path) -> None:
    path = tmp_path / "adm.pt"
    _write(path)
    with pytest.raises(CheckpointError, match=r"adm\.pt"):
        check_checkpoint("adm_unet", path, config={**TINY, "model_channels": 64})
    with pytest.raises(CheckpointError, match=r"adm\.pt"):
        check_checkpoint("adm_unet", path, config={**TINY, "learn_sigma": False})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:3000])
    res = runner.invoke(app, ["zoo", "check", "adm_unet", str(truncated), "--config", '{"image_size": 8}'])
    assert res.exit_code == 2 and "truncated.pt" in res.output
    cond = tmp_path / "cond.pt"
    _write(cond, num_classes=10)
    model = load_model({"arch": "adm_unet", "config": {**TINY, "num_classes": 10}, "checkpoint": str(cond)})
    with pytest.raises(ValueError, match="no null class"):
        model(torch.zeros(1, 1, 8, 8), torch.tensor([3]))


def test_diffpure_runs_on_an_adm_checkpoint(tmp_path: Path, zoo_dir: Path) -> None:
    path = tmp_path / "adm.pt"
    _write(path)
    ref = {"arch": "adm_unet", "config": TINY, "checkpoint": str(path)}
    doc = base_suite(
        defenses=[{"name": "diffpure", "params": {"diffusion_model": ref, "t_star": 0.2, "steps": 2}}],
        attacks=[
            {"id": "clean", "name": "clean"},
            {"id": "PGD2-full", "name": "pgd", "params": {"steps": 2}, "eot": 2},
        ],
        data={"dataset": "digits", "n_samples": 4},
    )
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(doc))
    out = tmp_path / "res"
    res = runner.invoke(
        app, ["run", str(suite), "--out", str(out), "--zoo-dir", str(zoo_dir), "--quiet", "--no-checks"]
    )
    assert res.exit_code == 0, res.output
    assert len(list((out / "rows").iterdir())) == 2
