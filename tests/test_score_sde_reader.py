"""score_sde's checkpoints (DiffPure's CIFAR-10 model, issue 15): the architecture against the official code, the
checkpoint layout with its EMA list, and bad files. Files are written here in the official layout, random weights."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from robbench.cli.app import app
from robbench.errors import CheckpointError
from robbench.models import build_model
from robbench.zoo import check_checkpoint, load_model
from tests.cifar10_fixtures import write_score_sde

runner = CliRunner()
TINY: dict[str, Any] = {"nf": 16, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [16], "image_size": 32}

#: sha256 of "name [shape]" lines, in named_parameters order, of score_sde_pytorch's own NCSNpp built with
#: configs/vp/cifar10_ddpmpp_deep_continuous.py (github.com/yang-song/score_sde_pytorch, models/ncsnpp.py; built
#: on CPU with the CUDA-only `op` module stubbed, which the config's fir=False never calls; docs/checkpoints.md).
#: The EMA list is matched by this order, so the names, the shapes and the order must all be the official ones.
OFFICIAL_DEEP_DIGEST = "e9d4892e1c327547dbb0c7c60345787a6341dfff6b34d1a7bd1942fde27102fc"


def _digest(model: torch.nn.Module) -> str:
    lines = "\n".join(f"{k} {list(v.shape)}" for k, v in model.named_parameters())
    return hashlib.sha256(lines.encode()).hexdigest()


def test_published_sizes_match_the_official_code() -> None:
    """DDPM++ cont. deep (checkpoint_8.pth): 106,632,579 parameters; with 4 blocks per level (the non-deep
    cifar10_ddpmpp_continuous) 61,804,419: both counted on the official code's models (no figure in the paper)."""
    deep = build_model("ncsnpp")
    assert sum(p.numel() for p in deep.parameters()) == 106_632_579
    assert _digest(deep) == OFFICIAL_DEEP_DIGEST
    assert len(deep.state_dict()) == 957  # 956 parameter tensors and the sigmas buffer
    del deep
    assert sum(p.numel() for p in build_model("ncsnpp", num_res_blocks=4).parameters()) == 61_804_419


def test_checkpoint_layout_loads_the_ema_weights(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_8.pth"
    write_score_sde(path, **TINY)
    obj = torch.load(path, weights_only=True)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    model = load_model(
        {"arch": "ncsnpp", "config": TINY, "checkpoint": str(path), "format": "score_sde", "sha256": sha}
    )
    names = [n for n, _ in model.named_parameters()]
    shadow = obj["ema"]["shadow_params"]
    for name, want in zip(names, shadow, strict=True):
        assert torch.equal(model.state_dict()[name], want), name
    assert not torch.equal(obj["model"][f"module.{names[0]}"], shadow[0])  # raw and EMA differ: EMA was taken
    assert torch.allclose(model.sigmas.double(), obj["model"]["module.sigmas"])
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    eps = model(x, torch.tensor([10, 500]))
    assert eps.shape == x.shape and torch.isfinite(eps).all() and eps.abs().sum() > 0
    assert model.betas.shape == (1000,) and float(model.betas[0]) == pytest.approx(1e-4)


def test_wrong_architecture_and_layout_are_named(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_8.pth"
    write_score_sde(path, **TINY)
    with pytest.raises(CheckpointError, match=r"checkpoint_8\.pth: its EMA holds \d+ tensors, the architecture has"):
        check_checkpoint("ncsnpp", path, fmt="score_sde", config={**TINY, "num_res_blocks": 2})
    with pytest.raises(CheckpointError, match=r"checkpoint_8\.pth: EMA tensor for all_modules\.0\.weight has shape"):
        check_checkpoint("ncsnpp", path, fmt="score_sde", config={**TINY, "nf": 32})
    plain = tmp_path / "plain.pt"
    torch.save(build_model("ncsnpp", **TINY).state_dict(), plain)
    with pytest.raises(CheckpointError, match=r"plain\.pt is not in the score_sde checkpoint layout"):
        check_checkpoint("ncsnpp", plain, fmt="score_sde", config=TINY)
    obj = torch.load(path, weights_only=True)
    del obj["ema"]
    no_ema = tmp_path / "no_ema.pth"
    torch.save(obj, no_ema)
    with pytest.raises(CheckpointError, match=r"no_ema\.pth has no EMA weights"):
        check_checkpoint("ncsnpp", no_ema, fmt="score_sde", config=TINY)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[:5000])
    res = runner.invoke(
        app, ["zoo", "check", "ncsnpp", str(truncated), "--format", "score_sde", "--config", '{"nf": 16}']
    )
    assert res.exit_code == 2 and "truncated.pth" in res.output


def test_a_missing_public_checkpoint_says_where_it_comes_from(tmp_path: Path) -> None:
    """`robbench validate` of suites/cifar10.yaml without its files names the first missing one and its source."""
    import shutil
    import subprocess

    from tests.cifar10_fixtures import write_cifar_batch
    from tests.conftest import ROOT, cli_cmd

    shutil.copy(ROOT / "suites" / "cifar10.yaml", tmp_path / "cifar10.yaml")
    write_cifar_batch(tmp_path / "data")
    res = subprocess.run(
        cli_cmd("validate", str(tmp_path / "cifar10.yaml"), "--data-dir", str(tmp_path / "data")),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "ncsnv2_cifar10.pth not found" in res.stderr and "github.com/ermongroup/ncsnv2" in res.stderr, res.stderr
    from robbench.zoo import check_model_ref

    ref = {"arch": "ncsnpp", "checkpoint": str(tmp_path / "checkpoint_8.pth"), "format": "score_sde"}
    with pytest.raises(CheckpointError, match="checkpoint_8.pth not found") as err:
        check_model_ref(ref, "defense diffpure")
    assert "vp/cifar10_ddpmpp_deep_continuous/checkpoint_8.pth" in str(err.value.hint)
