"""The undefended classifier."""

from __future__ import annotations

from robbench.defenses.base import Defense


class NoDefense(Defense):
    """No defense: the suite's classifier on the raw input (the undefended baseline).

    Paper: none. Threat norms: all. Parameters: none. Deterministic.
    """

    has_purifier = False
