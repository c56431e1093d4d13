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
