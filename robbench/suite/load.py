"""Reading a suite: strict YAML to pydantic models, with errors that name the line."""

from __future__ import annotations

import re
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


def anchor_checkpoints(node: Any, base: Path) -> Any:
    """Relative ``checkpoint:`` paths anywhere in the document, made absolute against ``base`` (the
    suite file's folder), so a suite means the same files from whatever directory it is run."""
    if isinstance(node, dict):
        out = {k: anchor_checkpoints(v, base) for k, v in node.items()}
        ckpt = out.get("checkpoint")
        if isinstance(ckpt, str) and ckpt and not ckpt.startswith("~") and not Path(ckpt).is_absolute():
            out["checkpoint"] = str((base / ckpt).resolve())
        return out
    if isinstance(node, list):
        return [anchor_checkpoints(v, base) for v in node]
    return node


def parse_suite(text: str, source: str = "<suite>", base_dir: Path | None = None) -> Suite:
    """Parse and validate the document structure (no registry or data checks).

    With ``base_dir`` (the suite file's folder), relative checkpoint paths resolve against it.
    """
    from robbench.suite.strict_yaml import load_yaml

    _check_depth(text, source)
    try:
        raw = load_yaml(text, source)  # safe loader; tags, duplicate keys and alias bombs refused
    except RecursionError:
        raise SuiteError(
            f"{source}: nested too deeply to parse (limit {MAX_DEPTH} levels)", hint="write the suite out plainly"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SuiteError(f"{source}: YAML syntax error{where}: {problem}", hint="fix the YAML syntax") from None
    if not isinstance(raw, dict):
        raise SuiteError(
            f"{source}: a suite must be a YAML mapping with name, data, threats, defenses, attacks",
            hint="start from a copy of suites/quickstart.yaml",
        )
    if base_dir is not None:
        raw = anchor_checkpoints(raw, base_dir)
    try:
        return Suite.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        named = re.match(r"(?:Value error, )?(\w+)\.(\d+) ", err["msg"])
        if named and loc in ((), (named.group(1),)):
            loc = (named.group(1), int(named.group(2)))
        line = _yaml_line(text, loc)
        at = f" (line {line})" if line else ""
        raise SuiteError(f"{source}{at}: {format_validation_error(exc, 'suite', Suite)}", hint=_hint(err)) from None


def _hint(err: Any) -> str:
    """The fix for one pydantic error, from its type and context."""
    field = ".".join(str(x) for x in err["loc"]) or "the suite"
    ctx = err.get("ctx") or {}
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
    kind = err["type"]
    if kind in bounds:
        limit = next(iter(ctx.values()), "the limit")
        return f"give {field} a value {bounds[kind]} {limit}"
    words = {"int": "a whole number", "float": "a number", "bool": "true or false", "string": "text"}
    words |= {"dict": "a mapping", "model": "a mapping", "list": "a list"}
    if kind.split("_")[0] in words and kind.endswith(("_type", "_parsing", "_from_fraction")):
        return f"write {field} as {words[kind.split('_')[0]]} (the README's annotated suite shows every key)"
    if kind == "too_short":
        return f"give {field} at least {ctx.get('min_length', 1)} item(s)"
    if kind == "missing":
        return f"add {field}"
    if kind == "literal_error":
        return f"use one of the values the message lists for {field}"
    return f"correct {field} as the message says (the README's annotated suite shows every key)"


#: the largest suite file read (a suite is a few kB; the biggest shipped one is under 10 kB)
MAX_SUITE_BYTES = 1_000_000
#: the deepest nesting of lists and mappings accepted (a suite needs 5 levels)
MAX_DEPTH = 64


def read_suite(path: str | Path) -> tuple[Suite, str]:
    """Read and parse a suite file; every problem is one :class:`SuiteError` naming the fix."""
    p = Path(path)
    if p.is_dir():
        raise SuiteError(
            f"suite file {p} is a folder", hint="pass the path of a suite YAML, e.g. suites/quickstart.yaml"
        )
    if not p.is_file():
        raise SuiteError(f"suite file {p} not found", hint="pass the path of a suite YAML, e.g. suites/quickstart.yaml")
    size = p.stat().st_size
    if size > MAX_SUITE_BYTES:
        raise SuiteError(
            f"suite file {p} is {size / 1e6:.1f} MB; a suite is a few kB (limit {MAX_SUITE_BYTES // 1000} kB)",
            hint="select samples with n_samples/offset instead of long index lists, and keep data out of the suite",
        )
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SuiteError(
            f"suite file {p} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line})",
            hint="save the file as UTF-8",
        ) from None
    return parse_suite(text, str(p), p.resolve().parent), text


def _check_depth(text: str, source: str) -> None:
    """Refuse absurd nesting before the YAML parser recurses into it (it would exhaust the stack)."""
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    if deepest > MAX_DEPTH:
        raise SuiteError(
            f"{source}: lists or mappings nested {deepest} deep (limit {MAX_DEPTH})",
            hint="a suite needs a few levels of nesting; write it out plainly",
        )
