"""Shared test fixtures: a persistent zoo cache, a digits suite writer, the CLI runner."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# trained zoo models are cached across test runs (a fresh clone trains them once)
ZOO_DIR = Path(os.environ.get("ROBBENCH_TEST_ZOO_DIR", ROOT / ".robbench-cache" / "zoo"))
os.environ["ROBBENCH_ZOO_DIR"] = str(ZOO_DIR)


@pytest.fixture(scope="session")
def zoo_dir() -> Path:
    ZOO_DIR.mkdir(parents=True, exist_ok=True)
    return ZOO_DIR


@pytest.fixture(scope="session")
def digits_classifier(zoo_dir: Path):  # type: ignore[no-untyped-def]
    from robbench.zoo import load_model

    return load_model("digits-cnn", zoo_dir=zoo_dir, quiet=True)


def base_suite(**overrides: Any) -> dict[str, Any]:
    """A small valid digits suite as a dict; override any top-level key."""
    suite: dict[str, Any] = {
        "name": "t",
        "seed": 0,
        "data": {"dataset": "digits", "split": "test", "n_samples": 40},
        "classifier": "digits-cnn",
        "threats": [{"norm": "linf", "eps": 0.1}],
        "defenses": [{"name": "none"}],
        "attacks": [{"id": "clean", "name": "clean"}, {"id": "PGD5", "name": "pgd", "params": {"steps": 5}}],
        "evaluation": {"batch_size": 16},
    }
    suite.update(overrides)
    return suite


@pytest.fixture
def write_suite(tmp_path: Path):  # type: ignore[no-untyped-def]
    def _write(suite: dict[str, Any] | str, name: str = "suite.yaml") -> Path:
        p = tmp_path / name
        p.write_text(suite if isinstance(suite, str) else yaml.safe_dump(suite, sort_keys=False))
        return p

    return _write


# ---- real plugin packages and real CLI subprocesses -------------------------------------------
PLUGINS = Path(__file__).parent / "plugins"


def install_plugin(pkg: str, target: Path) -> Path:
    """pip-install the test plugin package ``tests/plugins/PKG`` into ``target`` (not into the venv)."""
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(PLUGINS / pkg),
        ],
        check=True,
    )
    return target


@pytest.fixture(scope="session")
def testplugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``robbench-testplugin`` installed: put it on PYTHONPATH of a subprocess."""
    return install_plugin("robbench_testplugin", tmp_path_factory.mktemp("testplugin"))


def cli_env(pythonpath: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for a ``python -m robbench.cli`` subprocess (shared zoo cache, optional plugins)."""
    env = dict(os.environ, ROBBENCH_ZOO_DIR=str(ZOO_DIR), **extra)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def cli_cmd(*args: str) -> list[str]:
    """The argv of a real ``robbench`` run in a fresh interpreter."""
    import sys

    return [sys.executable, "-m", "robbench.cli", *args]


def run_benchmark(script: str, *args: str) -> Any:
    """``python benchmarks/SCRIPT ARGS`` from the repository root on one thread (shared zoo cache), checked to
    exit 0; returns the completed process (its ``stdout`` holds the tables)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    res = subprocess.run(
        [sys.executable, str(root / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        cwd=root,
        env=cli_env(OMP_NUM_THREADS="1"),
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def run_suite_cli(suite_path: Path, out: Path, zoo_dir: Path) -> Any:
    """``robbench run SUITE --out OUT --zoo-dir ZOO --quiet --table none`` in-process (Typer's runner), checked
    to exit 0; returns the loaded results and their summary ``(Loaded, DataFrame)``."""
    from typer.testing import CliRunner

    from robbench.cli import app
    from robbench.report.summary import summarize
    from robbench.results.load import load_results

    res = CliRunner().invoke(
        app, ["run", str(suite_path), "--out", str(out), "--zoo-dir", str(zoo_dir), "--quiet", "--table", "none"]
    )
    assert res.exit_code == 0, res.output
    loaded = load_results(out)
    return loaded, summarize(loaded.rows, loaded.manifest)
