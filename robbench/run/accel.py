"""Optional speed-ups applied to the models of a run: torch.compile, channels-last, bf16 autocast.

- ``compile`` (run flag ``--compile``): ``nn.Module.compile()`` on the classifier and on the
  generative models inside each defense. Not part of any identity (like the device): compiled
  kernels may differ from eager ones at float round-off.
- ``channels_last`` (run flag ``--channels-last``): the same models' 4-D weights in channels-last
  memory format (convolutions then run NHWC).
- ``generative_precision: bf16`` (suite option ``evaluation.generative_precision``, default
  ``fp32``): the *generative* models only (score / diffusion networks, found by their interface:
  a ``sigmas`` buffer, or ``betas`` and ``alphas_cumprod``) run under ``torch.autocast`` in
  bfloat16 and return float32; the classifier and all purifier arithmetic (Tweedie, updates,
  projections) stay float32. It changes results, so it enters the cell identity and the manifest.

Whether compile and channels-last help is measured, not assumed: ``benchmarks/bench_compile.py``.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

PRECISIONS = ("fp32", "bf16")


_DTYPES = {"bf16": torch.bfloat16}


def is_generative(module: nn.Module) -> bool:
    """True for a score model (``sigmas``) or a diffusion model (``betas`` and ``alphas_cumprod``)."""
    from robbench.defenses.base import Defense

    if isinstance(module, Defense):
        return False
    return hasattr(module, "sigmas") or (hasattr(module, "betas") and hasattr(module, "alphas_cumprod"))


def generative_modules(root: nn.Module, exclude: nn.Module | None = None) -> list[nn.Module]:
    """The outermost generative submodules of ``root`` (never ``exclude``, e.g. the classifier)."""
    found: list[nn.Module] = []

    def visit(m: nn.Module) -> None:
        if m is exclude:
            return
        if m is not root and is_generative(m):
            if not any(m is f for f in found):
                found.append(m)
            return
        for child in m.children():
            visit(child)

    visit(root)
    return found


class _AutocastForward:
    """``forward`` under autocast to ``dtype``; floating outputs cast back to float32."""

    def __init__(self, fn: Any, dtype: torch.dtype) -> None:
        self.fn = fn
        self.dtype = dtype

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        dev = next((a.device for a in args if isinstance(a, Tensor)), torch.device("cpu"))
        with torch.autocast(dev.type, dtype=self.dtype):
            out = self.fn(*args, **kwargs)
        if isinstance(out, Tensor) and out.is_floating_point():
            return out.float()
        return out


def autocast_module(module: nn.Module, precision: str) -> bool:
    """Make ``module`` run under autocast at ``precision`` (idempotent). False for fp32."""
    if precision == "fp32":
        return False
    if precision not in _DTYPES:
        raise ValueError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
    if isinstance(module.__dict__.get("forward"), _AutocastForward):
        return True
    module.forward = _AutocastForward(module.forward, _DTYPES[precision])
    return True


def prepare_model(model: nn.Module, *, compile: bool = False, channels_last: bool = False) -> nn.Module:
    """Apply channels-last and/or torch.compile to ``model`` in place (idempotent); returns it."""
    if channels_last and not getattr(model, "_robbench_channels_last", False):
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        model._robbench_channels_last = True  # type: ignore[assignment]
    if compile and getattr(model, "_compiled_call_impl", None) is None:
        model.compile()
    return model


def prepare_defense(
    defense: nn.Module,
    *,
    classifier: nn.Module | None = None,
    precision: str = "fp32",
    compile: bool = False,
    channels_last: bool = False,
) -> dict[str, Any]:
    """Apply the run's options to a built defense's generative models; returns what was done."""
    gens = generative_modules(defense, exclude=classifier)
    for g in gens:
        autocast_module(g, precision)
        prepare_model(g, compile=compile, channels_last=channels_last)
    if precision != "fp32" and not gens:
        warnings.warn(
            f"generative_precision {precision}: defense {type(defense).__name__} has no generative "
            "model; nothing runs in reduced precision",
            stacklevel=2,
        )
    return {
        "generative_models": [type(g).__name__ for g in gens],
        "precision": precision,
        "compile": compile,
        "channels_last": channels_last,
    }
