"""Deprecated import path: use ``robbench.core.components``. Kept for one release so that plugins written against
robbench 0.0.x keep working (the module moved in the layered layout; see CHANGELOG.md)."""

from __future__ import annotations

import warnings

from robbench.core.components import *  # noqa: F403

warnings.warn(
    "robbench.components moved to robbench.core.components; the old path will be removed in the next release",
    DeprecationWarning,
    stacklevel=2,
)
