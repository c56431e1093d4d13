"""Helpers shared by the benchmark scripts (run as `python benchmarks/NAME.py`, so this folder is on sys.path)."""

from __future__ import annotations

from pathlib import Path

LOADAVG = Path("/proc/loadavg")


def load_average() -> list[str]:
    """The 1-, 5- and 15-minute load averages as printed in benchmarks/RESULTS.md (["?"] where unknown)."""
    return LOADAVG.read_text().split()[:3] if LOADAVG.exists() else ["?"]
