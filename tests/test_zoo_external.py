"""External checkpoint layouts read from local files (NCSNv2, RobustBench WRN), and bad input:
unknown architecture, wrong shapes, failing hash, a pickle that is not a weights file. Each file is
written here in the exact layout, with random weights."""

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
from robbench.core.seeding import generator
from robbench.errors import CheckpointError, RegistryError
from robbench.models import build_model, init_weights
from robbench.zoo import check_checkpoint, load_model

runner = CliRunner()
NCSN_TINY = {"in_channels": 3, "ngf": 4, "num_scales": 10, "sigma_max": 50.0, "sigma_min": 0.01}
WRN_TINY = {"depth": 10, "widen_factor": 1}


def _random(arch: str, config: dict[str, Any], seed: int) -> torch.nn.Module:
    return init_weights(build_model(arch, **config), generator(seed))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ncsnv2_file(path: Path, with_ema: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The official layout: [DataParallel state dict, optimizer state, epoch, step, (EMA shadow)]."""
    raw = _random("ncsnv2", NCSN_TINY, 1)
    ema = _random("ncsnv2", NCSN_TINY, 2)
    opt = torch.optim.Adam(raw.parameters(), lr=1e-4)
    states: list[Any] = [{f"module.{k}": v for k, v in raw.state_dict().items()}, opt.state_dict(), 3, 5000]
    if with_ema:
        states.append({k: p.detach().clone() for k, p in ema.named_parameters()})
    torch.save(states, path)
    return raw, ema


@pytest.mark.parametrize("with_ema", [True, False])
def test_ncsnv2_checkpoint_layout_loads_ema_weights(tmp_path: Path, with_ema: bool) -> None:
    path = tmp_path / "checkpoint_5000.pth"
    raw, ema = _ncsnv2_file(path, with_ema)
    ref = {"arch": "ncsnv2", "config": NCSN_TINY, "checkpoint": str(path), "format": "ncsnv2", "sha256": _sha(path)}
    model = load_model(ref)
    want = ema if with_ema else raw
    got = model.state_dict()
    for k, v in want.named_parameters():
        assert torch.equal(got[k], v.detach()), k
    assert torch.equal(got["sigmas"], raw.sigmas)  # the buffer comes from the model state (EMA holds parameters only)
    x = torch.rand(2, 3, 16, 16, generator=generator(0))
    sig = model.sigmas[[0, 5]]
    with torch.no_grad():
        assert torch.allclose(model(x, sig), want.eval()(x, sig), atol=1e-5)


def test_ncsnv2_full_size_has_the_official_cifar10_ladder() -> None:
    m = build_model("ncsnv2")
    assert m.sigmas.shape == (232,)
    assert float(m.sigmas[0]) == pytest.approx(50.0) and float(m.sigmas[-1]) == pytest.approx(0.01)
    sd = m.state_dict()
    # a few names and shapes of the official NCSNv2 CIFAR-10 model (ngf 128, InstanceNorm++, RefineNet)
    assert tuple(sd["begin_conv.weight"].shape) == (128, 3, 3, 3)
    assert tuple(sd["res2.0.conv2.conv.weight"].shape) == (256, 128, 3, 3)
    assert tuple(sd["res3.0.shortcut.weight"].shape) == (256, 256, 3, 3)
    assert tuple(sd["refine1.adapt_convs.0.2_2_conv.weight"].shape) == (256, 256, 3, 3)
    assert tuple(sd["refine4.output_convs.3_2_conv.weight"].shape) == (128, 128, 3, 3)
    assert tuple(sd["normalizer.alpha"].shape) == (128,)


@pytest.mark.parametrize("wrapped,prefixed", [(True, True), (False, True), (False, False), (True, False)])
def test_robustbench_wrn_state_dict_loads(tmp_path: Path, wrapped: bool, prefixed: bool) -> None:
    src = _random("wrn28_10", WRN_TINY, 3)
    with torch.no_grad():  # non-trivial BN statistics, so buffers are checked too
        for m in src.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1, generator=generator(4))
                m.running_var.uniform_(0.5, 1.5, generator=generator(5))
    sd = {k: v for k, v in src.state_dict().items() if not k.startswith("normalize.")}  # RobustBench files lack them
    if prefixed:
        sd = {f"module.{k}": v for k, v in sd.items()}
    path = tmp_path / "Standard.pt"
    torch.save({"state_dict": sd} if wrapped else sd, path)
    model = load_model({"arch": "wrn28_10", "config": WRN_TINY, "checkpoint": str(path), "format": "robustbench"})
    x = torch.rand(4, 3, 32, 32, generator=generator(0))
    with torch.no_grad():
        assert torch.allclose(model(x), src.eval()(x), atol=1e-5)
    assert torch.equal(model.normalize.mean, torch.zeros(1, 3, 1, 1))  # the architecture's own (RobustBench: none)


def test_resnet20_plain_state_dict_round_trip(tmp_path: Path) -> None:
    src = _random("resnet20", {}, 7).eval()
    path = tmp_path / "r20.pt"
    torch.save(src.state_dict(), path)
    info = check_checkpoint("resnet20", path, sha256=_sha(path))
    assert info["parameters"] == sum(p.numel() for p in src.parameters())
    assert 260_000 < info["parameters"] < 290_000  # ResNet-20 has about 0.27 M parameters


# ---- bad input -------------------------------------------------------------------------------


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _cli(*args: str) -> Any:
    return runner.invoke(app, ["zoo", "check", *args])


def test_unknown_architecture_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save(_random("small_cnn", {"width": 4}, 0).state_dict(), path)
    with pytest.raises(RegistryError, match="unknown model 'wrn28_1'.*Did you mean: wrn28_10"):
        check_checkpoint("wrn28_1", path)
    res = _cli("wrn28_1", str(path))
    assert res.exit_code == 2 and "unknown model 'wrn28_1'" in res.output


def test_wrong_shapes_name_the_file_and_the_tensor(tmp_path: Path) -> None:
    path = tmp_path / "narrow.pt"
    torch.save(_random("small_cnn", {"width": 4}, 0).state_dict(), path)
    with pytest.raises(
        CheckpointError,
        match=r"narrow\.pt does not match.*shape of features\.0\.weight: file \(4, 1, 3, 3\) vs model \(8, 1, 3, 3\)",
    ):
        check_checkpoint("small_cnn", path, config={"width": 8})
    res = _cli("small_cnn", str(path), "--config", '{"width": 8}')
    assert res.exit_code == 2 and "narrow.pt" in res.output and "shape of" in res.output
    res = _cli("small_cnn", str(path), "--config", '{"width": 4}')
    assert res.exit_code == 0, res.output


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    sd = _random("small_cnn", {"width": 4}, 0).state_dict()
    sd["extra.weight"] = torch.zeros(1)
    del sd["head.3.bias"]
    path = tmp_path / "keys.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"keys\.pt.*missing \['head\.3\.bias'\].*unexpected \['extra\.weight'\]"):
        check_checkpoint("small_cnn", path, config={"width": 4})


@pytest.mark.parametrize("fmt", ["state_dict", "ncsnv2", "robustbench", "score_sde"])
def test_failing_hash_is_refused_before_loading(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "c.pt"
    torch.save(_random("small_cnn", {"width": 4}, 0).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"c\.pt fails its hash"):
        check_checkpoint("small_cnn", path, fmt=fmt, sha256="0" * 64, config={"width": 4})
    res = _cli("small_cnn", str(path), "--format", fmt, "--sha256", "0" * 64, "--config", '{"width": 4}')
    assert res.exit_code == 2 and "fails its hash" in res.output


@pytest.mark.parametrize("fmt", ["state_dict", "ncsnv2", "robustbench", "score_sde"])
def test_code_carrying_pickle_is_refused_without_running(tmp_path: Path, fmt: str) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"state_dict": _Payload(marker)}, fh, protocol=2)
    torch.save([{"module.x": _Payload(marker)}], tmp_path / "evil_zip.pth")
    for p in (path, tmp_path / "evil_zip.pth"):
        with pytest.raises(CheckpointError, match=rf"{p.name} is not a weights-only checkpoint"):
            check_checkpoint("ncsnv2" if fmt == "ncsnv2" else "small_cnn", p, fmt=fmt)
        res = _cli("small_cnn", str(p), "--format", fmt)
        assert res.exit_code == 2 and p.name in res.output
    assert not marker.exists(), "the pickle's payload ran"


def test_wrong_layout_for_the_format_is_named(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    torch.save(_random("ncsnv2", NCSN_TINY, 0).state_dict(), path)
    with pytest.raises(
        CheckpointError, match=r"plain\.pt is not in the NCSNv2 checkpoint layout.*found a plain state dict"
    ):
        check_checkpoint("ncsnv2", path, fmt="ncsnv2", config=NCSN_TINY)
    lst = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], lst)
    with pytest.raises(CheckpointError, match=r"list\.pt is not a state dict.*found a list"):
        check_checkpoint("wrn28_10", lst, fmt="robustbench", config=WRN_TINY)
    with pytest.raises(CheckpointError, match=r"list\.pt holds a list, not a state dict"):
        check_checkpoint("wrn28_10", lst, config=WRN_TINY)


def test_nothing_is_loaded_when_the_check_fails(tmp_path: Path) -> None:
    """A mismatch raises before load_state_dict touches the model: the model keeps its weights."""
    from robbench.zoo import _load_into

    model = _random("small_cnn", {"width": 4}, 0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = _random("small_cnn", {"width": 4}, 1).state_dict()
    bad["head.3.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError):
        _load_into(model, bad, "x.pt")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
