"""A plugin that (wrongly) claims the built-in name ``none``."""

from robbench.defenses.none import NoDefense as Other  # noqa: F401
