"""Deprecated import path: use ``robbench.core.seeding``. Kept for one release so that plugins written against
robbench 0.0.x keep working (the module moved in the layered layout; see CHANGELOG.md)."""

from __future__ import annotations

import warnings

from robbench.core.seeding import *  # noqa: F403

warnings.warn(
    "robbench.seeding moved to robbench.core.seeding; the old path will be removed in the next release",
    DeprecationWarning,
    stacklevel=2,
)
