"""Defenses: a purifier (pixels -> pixels) in front of a classifier, or a classifier of their own."""

from robbench.defenses.base import Defense

__all__ = ["Defense"]
