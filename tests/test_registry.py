"""Registry: built-ins through entry points, a real installed plugin package, conflicts, close matches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from robbench.core import registry
from robbench.errors import RegistryError
from tests.conftest import install_plugin


def _robbench(args: list[str], pythonpath: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    return subprocess.run(
        [sys.executable, "-m", "robbench.cli", *args], capture_output=True, text=True, env=env, cwd=cwd
    )


@pytest.fixture
def plugin_path(testplugin_path: Path) -> Path:
    return testplugin_path


@pytest.mark.parametrize("kind", sorted(registry.REGISTRIES))
def test_builtins_registered_with_descriptions(kind: str) -> None:
    reg = registry.registry(kind)
    assert reg.names(), f"no built-in {kind}"
    for name in reg.names():
        assert reg.entry(name).dist == "robbench" or reg.entry(name).dist.startswith("robbench")
        assert reg.describe(name), f"{kind} {name} has no docstring header"


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(RegistryError, match="Did you mean: pgd"):
        registry.attacks.get("pdg")


def test_ls_does_not_import_torch() -> None:
    code = "import sys; from robbench.api import list_components; list_components(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plugin_package_is_discovered_and_runs(plugin_path: Path, tmp_path: Path, write_suite, zoo_dir) -> None:  # type: ignore[no-untyped-def]
    ls = _robbench(["ls", "defenses"], plugin_path, tmp_path)
    assert ls.returncode == 0, ls.stderr
    assert "test_blur" in ls.stdout and "Box blur" in ls.stdout
    from tests.conftest import base_suite

    suite = base_suite(
        defenses=[{"name": "test_blur", "params": {"kernel": 3}}],
        attacks=[{"id": "noise", "name": "test_noise"}],
        data={"dataset": "digits", "n_samples": 8},
    )
    path = write_suite(suite)
    res = _robbench(
        ["run", str(path), "--out", str(tmp_path / "res"), "--quiet", "--table", "csv"], plugin_path, tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert "test_blur,noise" in res.stdout
    bad = _robbench(
        [
            "validate",
            str(write_suite(dict(suite, defenses=[{"name": "test_blur", "params": {"kernel": 99}}]), "bad.yaml")),
        ],
        plugin_path,
        tmp_path,
    )
    assert bad.returncode == 2 and "kernel" in bad.stderr


def test_two_packages_claiming_one_name(tmp_path: Path) -> None:
    install_plugin("robbench_conflict", tmp_path / "site")
    res = _robbench(["ls", "defenses"], tmp_path / "site", tmp_path)
    assert res.returncode == 2
    assert "robbench-conflict" in res.stderr and "robbench" in res.stderr and "'none'" in res.stderr


def test_contract_tests_cover_an_installed_plugin_without_edits(plugin_path: Path, tmp_path: Path) -> None:
    """The registry-parametrised contract tests pick up the plugin's defense, model and data set."""
    env = dict(os.environ, PYTHONPATH=f"{plugin_path}{os.pathsep}{Path(__file__).parents[1]}", OMP_NUM_THREADS="1")
    wanted = ["test_blur", "test_gauss", "test_lenet", "test_stripes"]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rA",
            str(Path(__file__).parent / "test_contracts.py"),
            "-k",
            " or ".join(wanted),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parents[1],
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    for test in (
        "test_defense_contract[test_blur]",
        "test_defense_contract[test_gauss]",
        "test_model_declares_an_input_shape_that_it_accepts[test_lenet]",  # 28x28 only: declared
        "test_dataset_contract[test_stripes]",
    ):
        assert f"PASSED tests/test_contracts.py::{test}" in out.stdout, test


def test_registry_refuses_an_entry_that_is_not_a_subclass_of_its_kind(tmp_path: Path) -> None:
    target = install_plugin("robbench_faulty", tmp_path / "faulty")
    code = "from robbench.core import registry; registry.defenses.get('test_not_a_defense')"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(target))
    )
    assert out.returncode != 0
    assert "is not a subclass of robbench.defenses.base.Defense" in out.stderr and "robbench-faulty" in out.stderr


def test_a_plugin_that_fails_to_import_is_named_by_doctor_validate_and_run(tmp_path: Path) -> None:
    """Issue 26 item 9: a plugin module with a missing dependency must not look healthy."""
    import yaml

    from tests.conftest import base_suite, cli_cmd, cli_env

    target = install_plugin("robbench_faulty", tmp_path / "faulty")
    env = cli_env(target)
    doctor = subprocess.run(cli_cmd("doctor"), capture_output=True, text=True, env=env)
    assert "defenses:test_broken_import" in doctor.stdout and "fails to import" in doctor.stdout, doctor.stdout
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(base_suite(defenses=[{"name": "test_broken_import"}])))
    out = tmp_path / "never"
    for cmd in (("validate", str(suite)), ("run", str(suite), "--out", str(out))):
        res = subprocess.run(cli_cmd(*cmd), capture_output=True, text=True, env=env)
        assert res.returncode == 2, res.stderr[-2000:]
        assert "robbench-faulty" in res.stderr and "ModuleNotFoundError" in res.stderr and "Traceback" not in res.stderr
        assert not out.exists()


def test_a_model_without_an_example_input_shape_is_refused_when_it_loads(tmp_path: Path) -> None:
    """Issue 26 item 9: the contract was enforced only by the tests; now by the registry."""
    target = install_plugin("robbench_faulty", tmp_path / "faulty")
    code = "from robbench.core import registry; registry.models.get('test_no_shape')"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(target))
    )
    assert out.returncode != 0 and "declares no example_input_shape" in out.stderr and "robbench-faulty" in out.stderr
