"""Random-weight stand-ins for every file ``suites/cifar10.yaml`` needs, each in its official layout, plus a
CIFAR-10 test batch in the ``cifar-10-batches-py`` layout.

Two sets: at the published sizes under ``checkpoints/cifar10/`` (the real suite validates against them), and at
small widths under ``checkpoints/cifar10-smoke/`` (same layouts and key names, the configs of :data:`SMOKE`),
which ``suites/cifar10_smoke.yaml`` runs on in CI (tests/test_cifar10_smoke.py): the published models cost
about a second per NCSNv2 evaluation on a CPU, too slow for 120 cells. The weights are random; the layouts are
what the public files use:

- ``checkpoints/cifar10/wrn28_10.pt``: RobustBench's WRN-28-10 (``{"state_dict": {"module.<name>": ...}}``,
  no normalisation buffers), 36,479,194 parameters;
- ``checkpoints/cifar10/ncsnv2_cifar10.pth``: NCSNv2's ``[model state (DataParallel), optimizer state,
  epoch, step, EMA shadow]`` list at the official CIFAR-10 size;
- ``checkpoints/cifar10/checkpoint_8.pth``: score_sde's ``{"optimizer", "model" (DataParallel), "ema"
  ({"decay", "num_updates", "shadow_params"}), "step"}`` dict of DiffPure's DDPM++ deep VP model; at the
  published size (106,632,579 parameters) the EMA shadow shares the model's tensors, so the file is 0.4 GB
  rather than 0.85 GB (torch.save stores a shared tensor once; the layout is the same);
- ``checkpoints/cifar10/edm-cifar10-32x32-cond-vp.pkl``: EDM's network pickle (``torch_utils.persistence``
  objects, tests/edm_fixtures.py) of RDC's class-conditional DDPM++ at the published size (55,735,299 parameters);
- ``data/cifar-10-batches-py/test_batch``: 10 images, one per class, as the official pickled dict.

Run ``python -m tests.cifar10_fixtures DIR`` to write both sets under DIR.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robbench.core.seeding import generator
from robbench.models import build_model, init_weights

#: the smoke set's model configs (suites/cifar10_smoke.yaml names the same); the published set uses the
#: architectures' defaults and Ho et al.'s UNet
SMOKE: dict[str, dict[str, Any]] = {
    "wrn28_10": {"depth": 10, "widen_factor": 1},
    "ncsnv2": {"in_channels": 3, "ngf": 8, "num_scales": 10, "sigma_max": 50.0, "sigma_min": 0.01},
    "edm_vp": {"model_channels": 16, "channel_mult": [1, 2], "num_blocks": 1},
    "ncsnpp": {"nf": 16, "ch_mult": [1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [16]},
}
#: a small diffusers UNet for CIFAR-shaped images (the smoke set; diffusers writes its config.json)
SMOKE_UNET: dict[str, Any] = {
    "sample_size": 32,
    "in_channels": 3,
    "out_channels": 3,
    "layers_per_block": 1,
    "block_out_channels": [16, 32],
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
    "norm_num_groups": 8,
}


def _random(arch: str, seed: int, **config: Any) -> torch.nn.Module:
    return init_weights(build_model(arch, **config), generator(seed))


def write_wrn(path: Path, **config: Any) -> None:
    model = _random("wrn28_10", 1, **config)
    sd = {f"module.{k}": v for k, v in model.state_dict().items() if not k.startswith("normalize.")}
    torch.save({"state_dict": sd}, path)


def write_ncsnv2(path: Path, **config: Any) -> None:
    raw, ema = _random("ncsnv2", 2, **config), _random("ncsnv2", 3, **config)
    opt = torch.optim.Adam(raw.parameters(), lr=1e-4)
    model_state = {f"module.{k}": v for k, v in raw.state_dict().items()}
    shadow = {k: p.detach().clone() for k, p in ema.named_parameters()}
    torch.save([model_state, opt.state_dict(), 1, 100, shadow], path)


def write_score_sde(path: Path, shared_ema: bool = False, **config: Any) -> None:
    """score_sde's checkpoint dict: the raw model (``module.``-prefixed, ``sigmas`` in float64 as the official
    buffer), its Adam state, and the EMA shadow list in parameter order (other weights unless ``shared_ema``)."""
    raw = _random("ncsnpp", 5, **config)
    ema = raw if shared_ema else _random("ncsnpp", 6, **config)
    gen = generator(7)
    for model in {id(raw): raw, id(ema): ema}.values():
        for name, p in model.named_parameters():
            if name.endswith((".W", ".b")):  # the attention's 1x1 maps (init_weights leaves them at zero)
                p.data = torch.randn(p.shape, generator=gen) * 0.05
    state = {f"module.{k}": v for k, v in raw.state_dict().items()}
    state["module.sigmas"] = state["module.sigmas"].double()
    shadow = [p.detach() if shared_ema else p.detach().clone() for p in ema.parameters()]
    opt = torch.optim.Adam(raw.parameters(), lr=2e-4)
    ckpt = {
        "optimizer": opt.state_dict(),
        "model": state,
        "ema": {"decay": 0.9999, "num_updates": 100, "shadow_params": shadow},
    }
    torch.save({**ckpt, "step": 100}, path)


def write_diffusers(folder: Path, unet: dict[str, Any] | None = None) -> None:
    from tests.test_diffusers_reader import CIFAR10_UNET, write_folder

    write_folder(folder, unet or CIFAR10_UNET)


def write_rdc(path: Path, **config: Any) -> None:
    from tests.edm_fixtures import write_edm

    write_edm(path, **config)


def write_cifar_batch(folder: Path, n: int = 10) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": [i % 10 for i in range(n)], b"data": data}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))


def write_checkpoints(folder: Path, smoke: bool) -> None:
    """The five checkpoints under ``folder``: the smoke configs, or the published sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg: dict[str, dict[str, Any]] = SMOKE if smoke else {}
    write_wrn(folder / "wrn28_10.pt", **cfg.get("wrn28_10", {}))
    write_ncsnv2(folder / "ncsnv2_cifar10.pth", **cfg.get("ncsnv2", {}))
    write_diffusers(folder / "ddpm-cifar10-32", SMOKE_UNET if smoke else None)
    write_score_sde(folder / "checkpoint_8.pth", shared_ema=not smoke, **cfg.get("ncsnpp", {}))
    write_rdc(folder / "edm-cifar10-32x32-cond-vp.pkl", **cfg.get("edm_vp", {}))


def write_cifar10_fixtures(root: Path, published: bool = True, smoke: bool = True) -> Path:
    """The files under ``root`` (the folder to run the suites from); returns the data folder."""
    if published:
        write_checkpoints(root / "checkpoints" / "cifar10", smoke=False)
    if smoke:
        write_checkpoints(root / "checkpoints" / "cifar10-smoke", smoke=True)
    data = root / "data" / "cifar-10-batches-py"
    write_cifar_batch(data)
    return data


if __name__ == "__main__":
    print(write_cifar10_fixtures(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
