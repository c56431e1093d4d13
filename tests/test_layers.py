"""The package layers of docs/architecture.md: imports only point down, and the readers skip torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1] / "robbench"

#: docs/architecture.md's layers; a module may import from its own layer or below
LAYERS = {
    "core": 0,
    "errors": 0,
    "components": 0,  # deprecated shims of core.components and core.seeding
    "seeding": 0,
    "suite": 1,
    "models": 2,
    "data": 2,
    "zoo": 3,
    "defenses": 4,
    "attacks": 4,
    "results": 5,
    "run": 6,
    "report": 7,
    "api": 8,
    "doctor": 8,
    "cli": 9,
    "__main__": 9,
}
#: the one documented exception: the adversarial trainer sits above the attacks it trains with
ABOVE_ATTACKS = {"robbench.zoo.train_adversarial": 4}


def _layer(module: str) -> int | None:
    if module in ABOVE_ATTACKS:
        return ABOVE_ATTACKS[module]
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported robbench module, line) outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for b in node.body for n in ast.walk(b)}
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("robbench"):
            out.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("robbench")]
    return out


def test_imports_point_down() -> None:
    up = []
    for path in sorted(ROOT.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        me = _layer(module)
        for target, line in _imports(path):
            there = _layer(target)
            if me is not None and there is not None and there > me:
                up.append(f"{module}:{line} imports {target} (layer {there} > {me})")
    assert not up, "upward imports:\n" + "\n".join(up)


@pytest.mark.parametrize(
    "code",
    [
        "from robbench.cli.results import table, compare, plot",
        "from robbench import api; api.table_view; api.compare",
        "import robbench.report.plot.results",
        "import robbench.report.html.page",
    ],
)
def test_the_readers_do_not_import_torch(code: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; {code}; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False", code
