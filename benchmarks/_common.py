"""Helpers shared by the benchmark scripts (run as `python benchmarks/NAME.py`, so this folder is on sys.path)."""

from __future__ import annotations

from pathlib import Path

LOADAVG = Path("/proc/loadavg")


def load_average() -> list[str]:
    """The 1-, 5- and 15-minute load averages as printed in benchmarks/RESULTS.md (["?"] where unknown)."""
    return LOADAVG.read_text().split()[:3] if LOADAVG.exists() else ["?"]


def median_ci(values: list[float], level: float = 0.95, resamples: int = 10000) -> tuple[float, float, float]:
    """(median, low, high): the median of ``values`` and its percentile-bootstrap confidence interval.

    For per-repetition ratios on a noisy machine: a goal is demonstrably met when the whole interval
    is on its side. The resampling uses its own seeded generator (the same values give the same
    interval).
    """
    import numpy as np

    v = np.asarray(values, dtype=float)
    rng = np.random.default_rng(0)
    medians = np.median(v[rng.integers(0, len(v), size=(resamples, len(v)))], axis=1)
    tail = (1 - level) / 2
    return float(np.median(v)), float(np.quantile(medians, tail)), float(np.quantile(medians, 1 - tail))
