"""Model architectures (entry-point group ``robbench.models``): pixels in [0, 1], normalisation inside."""

from robbench.models.base import build_model, init_weights

__all__ = ["build_model", "init_weights"]
