"""The malformed-suite corpus (tests/malformed/*.yaml) through the real CLI, one process per file.

Each file starts with ``# expect: TEXT`` lines (all must appear in the one ``error:`` line),
optional ``# hint: TEXT`` lines (must appear in the ``fix:`` line) and an optional ``# command:``:

- (none): ``robbench validate FILE``
- ``run``: ``robbench run FILE --out OUT`` (OUT must not exist afterwards)
- ``run-default-out``: ``robbench run FILE`` (the default ``results/NAME`` must not appear anywhere)
- ``run-foreign-out``: ``--out`` is an existing folder with someone else's file (left untouched)
- ``run-file-out``: ``--out`` is an existing file (left untouched)

Every call must exit 2 with exactly one ``error:`` line naming the field, no traceback, and write
nothing: each runs in its own empty working directory, which must still be empty afterwards.
The calls run concurrently (one per CPU) to keep the corpus fast.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.rowtools import run_cli

CORPUS = Path(__file__).parent / "malformed"
FILES = sorted(CORPUS.glob("*.yaml"))
FOREIGN_CONTENT = b"someone else's notes\n"


def directives(path: Path, key: str = "expect") -> tuple[list[str], str]:
    """The ``# KEY:`` texts of a corpus file and its command."""
    texts, command = [], "validate"
    for line in path.read_text().splitlines():
        if line.startswith(f"# {key}:"):
            texts.append(line.split(":", 1)[1].strip())
        elif line.startswith("# command:"):
            command = line.split(":", 1)[1].strip()
    return texts, command


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    cwd: Path
    out: Path | None
    left_behind: list[str]


def _call(path: Path, base: Path, plugin: Path) -> Outcome:
    _, command = directives(path)
    home = base / path.stem
    cwd = home / "cwd"
    cwd.mkdir(parents=True)
    out: Path | None = None
    if command == "validate":
        args = ["validate", str(path)]
    elif command == "run-default-out":
        args = ["run", str(path), "--quiet"]
    else:
        out = home / "out"
        if command == "run-foreign-out":
            out.mkdir()
            (out / "notes.txt").write_bytes(FOREIGN_CONTENT)
        elif command == "run-file-out":
            out.write_bytes(FOREIGN_CONTENT)
        args = ["run", str(path), "--out", str(out), "--quiet"]
    res = run_cli(args, cwd, pythonpath=plugin)
    left = sorted(
        str(p.relative_to(home)) for p in home.rglob("*") if p != cwd and not (out and (p == out or out in p.parents))
    )
    return Outcome(res.returncode, res.stdout, res.stderr, cwd, out, left)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory, testplugin_path: Path, zoo_dir: Path) -> dict[str, Outcome]:
    base = tmp_path_factory.mktemp("malformed")
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {p.name: pool.submit(_call, p, base, testplugin_path) for p in FILES}
        return {name: f.result() for name, f in futures.items()}


def test_corpus_is_complete() -> None:
    """Every file states what it expects; every category of the issue is present."""
    assert len(FILES) >= 40
    for path in FILES:
        expects, command = directives(path)
        assert expects, f"{path.name} has no '# expect:' line"
        assert command in ("validate", "run", "run-default-out", "run-foreign-out", "run-file-out"), path.name
    prefixes = {p.name.split("_")[0] for p in FILES}
    assert {"syntax", "type", "key", "name", "eps", "norm", "dup", "empty", "samples", "path", "missing"} <= prefixes
    assert sum(directives(p)[1] != "validate" for p in FILES) >= 10


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_malformed_suite_exits_2_with_one_line_naming_the_problem(path: Path, outcomes: dict[str, Outcome]) -> None:
    expects, command = directives(path)
    o = outcomes[path.name]
    assert o.code == 2, (o.code, o.stderr)
    assert "Traceback" not in o.stderr, o.stderr
    errors = [ln for ln in o.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, o.stderr
    for text in expects:
        assert text in errors[0], f"{text!r} not in {errors[0]!r}"
    for text in directives(path, "hint")[0]:
        assert any(ln.strip().startswith("fix:") and text in ln for ln in o.stderr.splitlines()), o.stderr
    assert "valid:" not in o.stdout
    # nothing written: the working directory (where results/NAME would go) is still empty ...
    assert not any(o.cwd.iterdir()), sorted(o.cwd.rglob("*"))
    assert o.left_behind == [], o.left_behind
    # ... and --out is as it was
    if command == "run":
        assert o.out is not None and not o.out.exists()
    elif command == "run-foreign-out":
        assert o.out is not None and sorted(p.name for p in o.out.iterdir()) == ["notes.txt"]
        assert (o.out / "notes.txt").read_bytes() == FOREIGN_CONTENT
    elif command == "run-file-out":
        assert o.out is not None and o.out.read_bytes() == FOREIGN_CONTENT
    elif command == "run-default-out":  # an absolute suite name would have made results/NAME absolute
        assert not Path("/robbench-absolute-name-test").exists()


def test_structural_errors_are_reported_without_loading_torch(tmp_path: Path) -> None:
    """Syntax, type, key and budget errors come back at once: the suite's structure is checked before
    anything imports torch (the registry and data checks come after)."""
    code = (
        "import sys\nfrom robbench.errors import SuiteError\nfrom robbench.suite import read_suite\n"
        f"try:\n    read_suite({str(CORPUS / 'eps_negative.yaml')!r})\nexcept SuiteError as e:\n    print(e.message)\n"
        "print('torch' in sys.modules)"
    )
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    message, torch_loaded = res.stdout.strip().splitlines()
    assert "suite.threats.0.eps" in message and torch_loaded == "False"
