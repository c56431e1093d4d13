"""Model architectures (entry-point group ``robbench.models``): pixels in [0, 1], normalisation inside.

This package imports nothing heavy, so ``robbench ls`` can read docstrings without torch.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("build_model", "init_weights"):
        from robbench.models import base

        return getattr(base, name)
    raise AttributeError(name)
