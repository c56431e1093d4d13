"""Threat budgets as plain data (no torch): norm names, ``"8/255"`` parsing, printing, limits.

Kept free of heavy imports so that ``robbench validate`` reports a malformed suite (wrong types,
bad budgets, unknown keys) without loading torch; :mod:`robbench.core.threat` re-exports these names.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Literal

Norm = Literal["linf", "l2", "l1"]


NORMS: tuple[str, ...] = ("linf", "l2", "l1")


_FRACTION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*/\s*([0-9]*\.?[0-9]+)\s*$")


def parse_eps(value: float | int | str) -> float:
    """Parse a budget given as a number or a fraction string such as ``"8/255"``."""
    if isinstance(value, bool):
        raise ValueError("eps must be a number or a fraction such as '8/255', not a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    m = _FRACTION.match(text)
    if m:
        den = float(m.group(2))
        if den == 0:
            raise ValueError(f"eps {text!r} divides by zero")
        return float(m.group(1)) / den
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"eps {text!r} is neither a number nor a fraction such as '8/255'") from None


def format_eps(eps: float) -> str:
    """Render a budget the way papers write it: ``8/255`` when it is one, a short decimal (``0.1``) when
    there is one, ``0.5/255`` for a quarter-step fraction of 255 (not ``0.00196078``), else ``%g``."""
    frac = Fraction(eps).limit_denominator(255)
    if frac.denominator == 255 and abs(float(frac) - eps) < 1e-9:
        return f"{frac.numerator}/255"
    short = f"{eps:g}"
    if len(short.lstrip("-0.")) <= 4 and "e" not in short:
        return short
    quarters = round(eps * 255 * 4)
    if quarters and abs(quarters / 4 / 255 - eps) < 1e-12:
        return f"{quarters / 4:g}/255"
    return short


def max_eps(norm: str, dim: int) -> float:
    """Largest meaningful budget for images in [0,1]^dim: beyond it the ball contains the whole box."""
    return {"linf": 1.0, "l2": math.sqrt(dim), "l1": float(dim)}[norm]


NORM_LABEL = {"linf": "Linf", "l2": "L2", "l1": "L1", "none": ""}


def threat_label(norm: str, eps_label: str) -> str:
    """``Linf 8/255``; empty for the threat-free clean attack."""
    return "" if norm == "none" else f"{NORM_LABEL.get(norm, norm)} {eps_label}"


def eps_key(eps: float | None) -> float | None:
    """A budget rounded for use as a key (so 8/255 written two ways matches); None stays None."""
    return None if eps is None else round(float(eps), 8)
