"""Strict YAML for suites: plain data only, no silent surprises.

Suites are parsed with PyYAML's *safe* loader, which builds only mappings, lists, strings,
numbers, booleans, null and timestamps: a ``!!python/object`` (or any other non-standard) tag
is rejected here with its line, before anything is constructed, so no suite can create objects
or run code. On top of that, :func:`load_yaml` rejects what the safe loader silently accepts:

- a key given twice in one mapping (PyYAML keeps the last one: ``eps: 8/255`` then ``eps: 8``
  would silently change the budget);
- recursive aliases (``&a [*a]``) and alias "bombs" that expand to more than
  :data:`MAX_NODES` values (a few lines that would take hours to validate or hash).
"""

from __future__ import annotations

from typing import Any

import yaml

from robbench.errors import SuiteError

#: largest number of values a suite may expand to (aliases counted at every use)
MAX_NODES = 200_000


#: tags the safe loader constructs (everything else is refused)
_SAFE_TAGS = {t for t in yaml.SafeLoader.yaml_constructors if t is not None} | {"tag:yaml.org,2002:merge"}


def _where(node: yaml.Node) -> str:
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


def _check(root: yaml.Node, source: str) -> None:
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def visit(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise SuiteError(
                f"{source}: recursive YAML alias at {_where(node)}", hint="a suite is a tree: remove the alias"
            )
        if node.tag not in _SAFE_TAGS:
            raise SuiteError(
                f"{source}: YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')} at {_where(node)} "
                "is not allowed: a suite is plain data (no Python objects, no code)",
                hint="remove the tag and write the value as a plain string, number, list or mapping",
            )
        active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, yaml.Node] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    if k.value in seen:
                        raise SuiteError(
                            f"{source}: key {k.value!r} appears twice in one mapping ({_where(seen[k.value])} and "
                            f"{_where(k)}); YAML would silently keep the last one",
                            hint=f"keep one {k.value!r}",
                        )
                    seen[k.value] = k
                total += visit(k) + visit(v)
        elif isinstance(node, yaml.SequenceNode):
            for v in node.value:
                total += visit(v)
        active.discard(key)
        if total > MAX_NODES:
            raise SuiteError(
                f"{source}: the suite expands to more than {MAX_NODES} values (YAML aliases at {_where(node)}?)",
                hint="write the suite out plainly; it should be a few hundred values",
            )
        sizes[key] = total
        return total

    visit(root)


def load_yaml(text: str, source: str = "<suite>") -> Any:
    """Parse ``text`` as plain-data YAML; :class:`SuiteError` for tags, duplicate keys, alias bombs.

    YAML syntax errors propagate as :class:`yaml.YAMLError` (callers add the line and column).
    """
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        return None
    _check(root, source)
    return yaml.safe_load(text)
