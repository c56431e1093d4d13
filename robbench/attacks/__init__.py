"""Attacks: registered through the `robbench.attacks` entry-point group.

This package imports nothing heavy, so `robbench ls` can read component docstrings without torch.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "Attack":
        from robbench.attacks.base import Attack

        return Attack
    raise AttributeError(name)
