"""EDM's network pickles (RDC's CIFAR-10 model, issue 15): the architecture against the official code, the pickle
read as data without running its code, and hostile or broken files. Pickles are written here in the official
layout (tests/edm_fixtures.py), random weights."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from robbench.cli.app import app
from robbench.errors import CheckpointError
from robbench.models import build_model
from robbench.zoo import check_checkpoint, load_model
from robbench.zoo.edm_pickle import load_pickle
from tests.edm_fixtures import MARKER, random_edm, write_edm

runner = CliRunner()
TINY: dict[str, Any] = {
    "img_resolution": 8, "model_channels": 16, "channel_mult": [1, 2], "num_blocks": 1, "attn_resolutions": [4],
}  # fmt: skip

#: sha256 of "name [shape]" lines, in state_dict order, of the official VPPrecond (github.com/NVlabs/edm,
#: training/networks.py) built with train.py's CIFAR-10 conditional DDPM++ arguments (tests/edm_fixtures.py's
#: CIFAR10_KWARGS); docs/checkpoints.md has the command.
OFFICIAL_DIGEST = "8d25ec9007b5290447e9b2607e67b1683b599b78b4d7a4ed9fa5b0f865824e77"


def test_published_size_matches_the_official_code() -> None:
    """edm-cifar10-32x32-cond-vp: 55,735,299 parameters (the official code's count; EDM's paper gives 55.73M
    for its DDPM++ CIFAR-10 networks), 427 state-dict entries with the official names, shapes and order."""
    model = build_model("edm_vp")
    assert sum(p.numel() for p in model.parameters()) == 55_735_299
    sd = model.state_dict()
    lines = "\n".join(f"{k} {list(v.shape)}" for k, v in sd.items())
    assert len(sd) == 427 and hashlib.sha256(lines.encode()).hexdigest() == OFFICIAL_DIGEST


def test_pickle_loads_as_data_and_its_code_never_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "edm-cifar10-32x32-cond-vp.pkl"
    original = write_edm(path, **TINY)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    model = load_model({"arch": "edm_vp", "config": TINY, "checkpoint": str(path), "format": "edm", "sha256": sha})
    assert not (tmp_path / MARKER).exists()  # module_src (code that writes the marker) was never executed
    for k, v in original.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    x, t = torch.rand(3, 3, 8, 8) * 2 - 1, torch.tensor([0, 500, 999])
    y = torch.tensor([1, 7, 10])  # 10 = num_classes: the zero label vector, as y=None
    eps = model(x, t, y)
    assert torch.allclose(eps, original(x, t, y)) and torch.isfinite(eps).all()
    assert torch.allclose(model(x[2:], t[2:]), eps[2:], atol=1e-6)
    assert not torch.allclose(model(x, t, torch.tensor([2, 7, 10]))[0], eps[0])  # the label matters
    abar = model.alphas_cumprod
    assert abar.shape == (1000,) and bool((abar[1:] < abar[:-1]).all())
    assert float(abar[-1]) == pytest.approx(torch.exp(torch.tensor(-(0.5 * 19.9 + 0.1))).item(), rel=1e-5)
    assert model.class_conditional and model.num_classes == 10


def _hostile(path: Path, target: Any, arg: str) -> None:
    class Evil:
        def __reduce__(self) -> Any:
            return target, (arg,)

    path.write_bytes(pickle.dumps({"ema": Evil()}, protocol=4))


@pytest.mark.parametrize("target", [os.system, eval, exec])
def test_a_pickle_carrying_code_is_refused_before_anything_runs(tmp_path: Path, target: Any) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    code = f"open({str(marker)!r}, 'w')" if target is not os.system else f"touch {marker}"
    _hostile(path, target, code)
    with pytest.raises(
        CheckpointError, match=r"evil\.pkl is a pickle carrying code: it references \S+\.(system|eval|exec)"
    ):
        check_checkpoint("edm_vp", path, fmt="edm", config=TINY)
    assert not marker.exists()
    res = runner.invoke(
        app, ["zoo", "check", "edm_vp", str(path), "--format", "edm", "--config", '{"img_resolution": 8}']
    )
    assert res.exit_code == 2 and "carrying code" in res.output and not marker.exists()


def test_broken_and_mismatched_files_are_named(tmp_path: Path) -> None:
    path = tmp_path / "net.pkl"
    write_edm(path, **TINY)
    with pytest.raises(CheckpointError, match=r"net\.pkl was built with model_channels=16; .* model_channels=32"):
        check_checkpoint("edm_vp", path, fmt="edm", config={**TINY, "model_channels": 32})
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pkl ends early"):
        check_checkpoint("edm_vp", truncated, fmt="edm", config=TINY)
    plain = tmp_path / "plain.pt"
    torch.save(random_edm(**TINY).state_dict(), plain)  # a state dict in torch's zip format, not EDM's pickle
    with pytest.raises(CheckpointError, match=r"plain\.pt is not a readable pickle"):
        check_checkpoint("edm_vp", plain, fmt="edm", config=TINY)
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps({"net": [1, 2]}, protocol=4))
    with pytest.raises(CheckpointError, match=r"other\.pkl is not an EDM network pickle: .*'net'"):
        check_checkpoint("edm_vp", other, fmt="edm", config=TINY)
    with pytest.raises(CheckpointError, match="fails its hash"):
        load_model({"arch": "edm_vp", "config": TINY, "checkpoint": str(path), "format": "edm", "sha256": "0" * 64})
    assert isinstance(load_pickle(path), dict)
