"""Defenses: registered through the `robbench.defenses` entry-point group.

This package imports nothing heavy, so `robbench ls` can read component docstrings without torch.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "Defense":
        from robbench.defenses.base import Defense

        return Defense
    raise AttributeError(name)
