"""Statistics of the summaries: Wilson score intervals."""

from __future__ import annotations

import math
from statistics import NormalDist


def wilson(k: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes of n (k rounded for mean scoring)."""
    if n == 0:
        return (float("nan"), float("nan"))
    # the closed form (as scipy.stats.binomtest(...).proportion_ci(method="wilson"), which a test
    # compares it with); scipy.stats itself costs ~1.7 s to import, paid by every table
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = round(k) / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)
