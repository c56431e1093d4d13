"""Reading a suite: strict YAML to pydantic models, with errors that name the line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from robbench.core.components import format_validation_error
from robbench.errors import SuiteError
from robbench.suite.model import Suite

if TYPE_CHECKING:  # torch-free until a suite's structure is valid (fast `robbench validate` errors)
    pass


def _yaml_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best effort: the 1-based line of the YAML node at ``loc`` (a pydantic error location)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == part:
                    nxt, line = v, k.start_mark.line + 1
                    break
            if nxt is None:
                return line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def parse_suite(text: str, source: str = "<suite>") -> Suite:
    """Parse and validate the document structure (no registry or data checks)."""
    from robbench.suite.strict_yaml import load_yaml

    try:
        raw = load_yaml(text, source)  # safe loader; tags, duplicate keys and alias bombs refused
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SuiteError(f"{source}: YAML syntax error{where}: {problem}", hint="fix the YAML syntax") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{source}: a suite must be a YAML mapping with name, data, threats, defenses, attacks")
    try:
        return Suite.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        line = _yaml_line(text, tuple(err["loc"]))
        at = f" (line {line})" if line else ""
        raise SuiteError(f"{source}{at}: {format_validation_error(exc, 'suite')}") from None


def read_suite(path: str | Path) -> tuple[Suite, str]:
    p = Path(path)
    if not p.is_file():
        raise SuiteError(f"suite file {p} not found", hint="pass the path of a suite YAML, e.g. suites/quickstart.yaml")
    text = p.read_text(encoding="utf-8")
    return parse_suite(text, str(p)), text
