"""The keys a suite (or a component's parameters) may have at a given place, for "did you mean"."""

from __future__ import annotations

import difflib
import typing
from typing import Any

from pydantic import BaseModel


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold (through Optional, unions, lists and dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out += _models_in(arg)
    return out


def keys_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names (and aliases) of the model(s) at ``loc``'s parent; [] when it cannot be told."""
    cands = [model]
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        named = [c for c in cands if c.__name__ == part]
        if named:  # a union member named in the location
            cands = named
            continue
        nxt: list[type[BaseModel]] = []
        for c in cands:
            f = c.model_fields.get(str(part))
            if f is not None:
                nxt += _models_in(f.annotation)
        if not nxt:
            return []
        cands = nxt
    keys: set[str] = set()
    for c in cands:
        for name, f in c.model_fields.items():
            keys.add(f.alias or name)
    return sorted(keys)


def did_you_mean(key: str, known: list[str]) -> str:
    """`` Did you mean 'x'?`` for the closest known key, else the known keys; '' when none are known."""
    if not known:
        return ""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" (known keys: {', '.join(known)})"
