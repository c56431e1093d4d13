"""Attacks: never bound to a model; the target and the threat are arguments."""

from robbench.attacks.base import Attack

__all__ = ["Attack"]
