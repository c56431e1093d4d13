"""Model architectures (entry-point group ``robbench.models``): pixels in [0, 1], normalisation inside.

This package imports nothing heavy, so ``robbench ls`` can read docstrings without torch.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the lazy names below, typed for mypy (nothing is imported at run time)
    from robbench.models.base import build_model as build_model
    from robbench.models.base import init_weights as init_weights


def __getattr__(name: str) -> Any:
    if name in ("build_model", "init_weights"):
        from robbench.models import base

        return getattr(base, name)
    raise AttributeError(name)
