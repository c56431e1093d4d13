"""The record every check yields, and the white-box gradient modes the checks look at."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


WHITE_BOX = ("full", "bpda", "custom")


def record(check: str, status: str, subject: str, message: str, **numbers: Any) -> dict[str, Any]:
    return {"check": check, "status": status, "subject": subject, "message": message, **numbers}


def not_computed(display: str, why: str) -> dict[str, Any]:
    """The ``info`` record standing for a defense's compute checks that could not be made (``why``)."""
    return record("checks", "info", display, f"compute checks {why}")
