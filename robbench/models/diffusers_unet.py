"""A ``diffusers`` UNet2DModel as robbench's epsilon-prediction diffusion model (optional extra).

Public DDPM checkpoints in the ``diffusers`` layout (Ho et al.'s CIFAR-10 model as
``google/ddpm-cifar10-32``, and any other UNet2DModel) load through checkpoint format ``diffusers``
(:mod:`robbench.zoo.external`), which reads the folder's ``config.json`` (the UNet) and
``scheduler_config.json`` (the noise schedule) and its weights (``diffusion_pytorch_model.safetensors``
or ``.bin``, weights-only). The network is built from the config by the real ``diffusers`` package
(``pip install 'robbench[diffusers]'``); robbench copies none of its code.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from robbench.errors import CheckpointError

#: a small UNet2DModel config for the registry's contract tests (1 channel, 8x8)
TINY_UNET: dict[str, Any] = {
    "sample_size": 8,
    "in_channels": 1,
    "out_channels": 1,
    "layers_per_block": 1,
    "block_out_channels": [8, 16],
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
    "norm_num_groups": 4,
}


def schedule(
    num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, beta_schedule: str = "linear"
) -> tuple[Tensor, Tensor]:
    """``betas`` and ``alphas_cumprod`` of a DDPMScheduler config (linear or scaled_linear)."""
    if beta_schedule == "linear":
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
    elif beta_schedule == "scaled_linear":
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
    else:
        raise CheckpointError(
            f"scheduler beta_schedule {beta_schedule!r} is not supported",
            hint="robbench reads linear and scaled_linear DDPM schedules",
        )
    return betas.float(), torch.cumprod(1 - betas, dim=0).float()


class DiffusersUNet(nn.Module):
    """``diffusers.UNet2DModel`` behind the :class:`~robbench.models.generative.DiffusionModel` protocol.

    ``unet``: the UNet2DModel config (``config.json``); the schedule keywords are the DDPMScheduler's.
    Class-conditional when the config has ``num_class_embeds`` (its last embedding the null label). The
    schedule is not part of the state dict (it comes from the scheduler config).
    """

    example_config: ClassVar[dict[str, Any]] = {"unet": TINY_UNET, "num_train_timesteps": 20}
    example_input_shape: ClassVar[tuple[int, int, int]] = (1, 8, 8)

    def __init__(
        self,
        unet: dict[str, Any],
        num_train_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
    ) -> None:
        super().__init__()
        try:
            from diffusers import UNet2DModel
        except ImportError:
            raise CheckpointError(
                "architecture diffusers_unet needs the optional package diffusers",
                hint="pip install 'robbench[diffusers]'",
            ) from None
        self.unet = UNet2DModel.from_config({k: v for k, v in unet.items() if not k.startswith("_")})  # type: ignore[no-untyped-call]
        betas, abar = schedule(num_train_timesteps, beta_start, beta_end, beta_schedule)
        self.register_buffer("betas", betas, persistent=False)
        self.register_buffer("alphas_cumprod", abar, persistent=False)
        embeds = int(unet.get("num_class_embeds") or 0)
        self.class_conditional = embeds > 1
        #: conditional: the last class embedding is the null (unconditional) label, as in models trained
        #: with classifier-free guidance; unconditional: one placeholder class, labels ignored
        self.num_classes = embeds - 1 if self.class_conditional else 1

    def forward(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        labels = None
        if self.class_conditional:
            null = torch.full((x_t.shape[0],), self.num_classes, dtype=torch.long, device=x_t.device)
            labels = null if y is None else y
        out: Tensor = self.unet(x_t, t, class_labels=labels).sample
        return out
