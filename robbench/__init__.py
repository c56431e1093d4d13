"""robbench: honest benchmarking of adversarial defenses."""

from __future__ import annotations

__version__ = "0.1.0"

#: bump when a change alters any row's numbers, so stored rows are not reused across it
RESULTS_VERSION = 1

__all__ = ["RESULTS_VERSION", "__version__"]
