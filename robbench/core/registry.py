"""One typed registry per component kind, fed by entry points.

Built-in components are registered through robbench's own entry points (see ``pyproject.toml``),
exactly like third-party plugins. Entries are lazy ``"module:attr"`` references: listing names and
their one-line descriptions reads the component's source with :mod:`ast` and imports nothing heavy.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.metadata as md
import importlib.util
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar

from robbench.errors import RegistryError

T = TypeVar("T")


#: the class every entry of a kind must subclass, as "module:attr" (imported only when an entry loads)
BASES: dict[str, str] = {
    "defenses": "robbench.defenses.base:Defense",
    "attacks": "robbench.attacks.base:Attack",
    "models": "torch.nn:Module",
    "datasets": "robbench.data.base:Dataset",
}


def base_class(kind: str) -> type:
    """The base class of a component kind (imports it)."""
    module, _, attr = BASES[kind].partition(":")
    cls: type = getattr(importlib.import_module(module), attr)
    return cls


KINDS: dict[str, str] = {
    "defenses": "robbench.defenses",
    "attacks": "robbench.attacks",
    "models": "robbench.models",
    "datasets": "robbench.datasets",
}


@dataclass(frozen=True)
class Entry:
    """A registered component: its name, where it lives, and which package registered it."""

    name: str
    value: str  # "module:attr"
    dist: str  # distribution (package) that declared the entry point
    #: for a dotted name ``family.member`` resolved through a *family* entry (see :meth:`Registry.get`)
    member: str | None = None

    @property
    def module(self) -> str:
        return self.value.split(":", 1)[0]

    @property
    def attr(self) -> str:
        return self.value.split(":", 1)[1]


def _docstring_first_line(module: str, attr: str) -> str:
    """First line of ``module.attr``'s docstring, read from source without importing the module."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return ""
    try:
        with open(spec.origin, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
    except (OSError, SyntaxError):
        return ""
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == attr:
            doc = ast.get_docstring(node) or ""
            return doc.strip().splitlines()[0] if doc.strip() else ""
    return ""


class Registry(Generic[T]):
    """Names -> components of one kind, discovered from an entry-point group."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group

    @property
    def entries(self) -> dict[str, Entry]:
        return _scan(self.group)

    def names(self) -> list[str]:
        return sorted(self.entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.entries

    def entry(self, name: str) -> Entry:
        entries = self.entries
        family, _, member = name.partition(".")
        if name not in entries and member and family in entries:
            fam = entries[family]
            return Entry(name, fam.value, fam.dist, member)
        if name not in entries:
            close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
            did = f" Did you mean: {', '.join(close)}?" if close else ""
            raise RegistryError(
                f"unknown {self.kind[:-1]} {name!r}.{did}",
                hint=f"run `robbench ls {self.kind}` for the {len(entries)} known names",
            )
        return entries[name]

    def get(self, name: str) -> T:
        """Import and return the component registered as ``name``.

        A dotted ``family.member`` whose ``family`` is registered resolves through the family
        object's ``family_member(member)`` classmethod (e.g. ``torchattacks.PGD``: one entry point
        exposes every class of an external library); a family without that method has no members.
        """
        entry = self.entry(name)
        obj: T = self._load(name, entry)
        if entry.member is not None:
            resolve = getattr(obj, "family_member", None)
            if resolve is None:
                family = name.partition(".")[0]
                raise RegistryError(
                    f"unknown {self.kind[:-1]} {name!r}: {family!r} is not a family of components",
                    hint=f"run `robbench ls {self.kind}` for the known names",
                )
            member: T = resolve(entry.member)
            return self._checked(name, entry, member)
        return self._checked(name, entry, obj)

    def _load(self, name: str, entry: Entry) -> T:
        """Import the entry point's object; a plugin that fails to import is one clear error naming it."""
        try:
            module = importlib.import_module(entry.module)
        except Exception as exc:
            raise RegistryError(
                f"{self.kind[:-1]} {name!r} ({entry.value}) of package {entry.dist} fails to import: "
                f"{type(exc).__name__}: {exc}",
                hint=f"fix or reinstall {entry.dist} (its dependencies), or uninstall it",
            ) from None
        try:
            obj: T = getattr(module, entry.attr)
        except AttributeError:
            raise RegistryError(
                f"{self.kind[:-1]} {name!r}: module {entry.module} of package {entry.dist} has no {entry.attr!r}",
                hint=f"fix the entry point of {entry.dist}, or uninstall it",
            ) from None
        return obj

    def _checked(self, name: str, entry: Entry, obj: T) -> T:
        """``obj`` if it subclasses the kind's base; a :class:`RegistryError` naming the package otherwise."""
        base = base_class(self.kind)
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise RegistryError(
                f"{self.kind[:-1]} {name!r} ({entry.value}, package {entry.dist}) is not a subclass of "
                f"{base.__module__}.{base.__qualname__}",
                hint=f"make {entry.attr} subclass {base.__qualname__}, or uninstall {entry.dist}",
            )
        shape = getattr(obj, "example_input_shape", None)
        if self.kind == "models" and not (
            isinstance(shape, tuple) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape)
        ):
            raise RegistryError(
                f"model {name!r} ({entry.value}, package {entry.dist}) declares no example_input_shape (C, H, W)",
                hint=f"add `example_input_shape = (C, H, W)` to {entry.attr}: an input its example_config accepts",
            )
        return obj

    def describe(self, name: str) -> str:
        entry = self.entry(name)
        return _docstring_first_line(entry.module, entry.attr)


@cache
def _scan(group: str) -> dict[str, Entry]:
    found: dict[str, Entry] = {}
    seen: set[tuple[str, str, str]] = set()
    for ep in md.entry_points(group=group):
        dist = ep.dist.name if ep.dist is not None else "<unknown>"
        key = (ep.name, ep.value, dist)
        if key in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(key)
        if ep.name in found and found[ep.name].value != ep.value:
            other = found[ep.name]
            raise RegistryError(
                f"two packages claim the {group} name {ep.name!r}: "
                f"{other.dist} ({other.value}) and {dist} ({ep.value})",
                hint="uninstall one of them, or ask its author to rename the entry point",
            )
        found[ep.name] = Entry(ep.name, ep.value, dist)
    return found


def clear_cache() -> None:
    """Forget discovered entry points (after installing a plugin in-process)."""
    _scan.cache_clear()


defenses: Registry[Any] = Registry("defenses", KINDS["defenses"])


attacks: Registry[Any] = Registry("attacks", KINDS["attacks"])


models: Registry[Any] = Registry("models", KINDS["models"])


datasets: Registry[Any] = Registry("datasets", KINDS["datasets"])


REGISTRIES: dict[str, Registry[Any]] = {
    "defenses": defenses,
    "attacks": attacks,
    "models": models,
    "datasets": datasets,
}


def registry(kind: str) -> Registry[Any]:
    if kind not in REGISTRIES:
        close = difflib.get_close_matches(kind, list(REGISTRIES), n=1)
        did = f" Did you mean {close[0]!r}?" if close else ""
        raise RegistryError(f"unknown component kind {kind!r}.{did}", hint=f"use one of {sorted(REGISTRIES)}")
    return REGISTRIES[kind]
