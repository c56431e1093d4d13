"""The GPU path: a tiny suite on CUDA gives the CPU rows' predictions (within a tolerance).

Skipped without CUDA. ``ROBBENCH_TEST_DEVICE=cpu`` runs the same comparison CPU against CPU (a dry
run of this test's own logic on a machine without a GPU).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from robbench.api import run
from robbench.core import registry
from robbench.results.store import ResultsDir
from tests.conftest import base_suite

DEVICE = os.environ.get("ROBBENCH_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    DEVICE.startswith("cuda") and not torch.cuda.is_available(),
    reason="needs a CUDA device (ROBBENCH_TEST_DEVICE=cpu for a CPU dry run)",
)

#: purifiers exercised on the device when registered: a deterministic score purifier, a stochastic diffusion one
PURIFIERS = ("pursamere", "diffpure")


def _suite() -> dict:  # type: ignore[type-arg]
    purifiers = [n for n in PURIFIERS if n in registry.defenses.names()]
    defenses = [{"name": "none"}] + [
        {"name": n, "params": dict(registry.defenses.get(n).example_params)} for n in purifiers
    ]
    attacks: list[dict] = [
        {"id": "clean", "name": "clean"},  # type: ignore[type-arg]
        {"id": "PGD5", "name": "pgd", "params": {"steps": 5}, "defenses": ["none"]},
    ]
    if purifiers:
        attacks.append(
            {
                "id": "BPDA3-det",
                "name": "pgd",
                "params": {"steps": 3},
                "gradient": "bpda",
                "randomness": "det",
                "defenses": purifiers,
            }
        )
    return base_suite(
        threats=[{"norm": "linf", "eps": 0.1}, {"norm": "l2", "eps": 0.5}],
        defenses=defenses,
        attacks=attacks,
        data={"dataset": "digits", "n_samples": 32},
        evaluation={"batch_size": 16, "draws": 2, "overrides": ["few-draws"]},
    )


def _rows(out: Path) -> pd.DataFrame:
    return ResultsDir(out).read_rows().sort_values(["cell", "sample_id"]).reset_index(drop=True)


def test_tiny_suite_on_the_device_gives_the_cpu_predictions(write_suite, tmp_path: Path, zoo_dir) -> None:  # type: ignore[no-untyped-def]
    path = write_suite(_suite())
    cpu = run(path, out=tmp_path / "cpu", device="cpu", quiet=True)
    dev = run(path, out=tmp_path / "dev", device=DEVICE, quiet=True)
    assert not cpu.failures and not dev.failures, (cpu.failures, dev.failures)
    a, b = _rows(tmp_path / "cpu"), _rows(tmp_path / "dev")
    # same cells (the device is no part of an identity), same samples, same seeds
    assert a[["cell", "sample_id", "seed", "label"]].equals(b[["cell", "sample_id", "seed", "label"]])
    assert (ResultsDir(tmp_path / "dev").read_manifest() or {})["device"].startswith(DEVICE.split(":")[0])
    # clean predictions: float round-off may flip a sample sitting on a decision boundary, no more
    clean = a["attack"] == "clean"
    assert (a.loc[clean, "clean_pred"] == b.loc[clean, "clean_pred"]).mean() >= 0.97
    # attacked: trajectories may diverge after a flip, so compare per cell accuracy and most predictions
    assert (a["adv_pred"] == b["adv_pred"]).mean() >= 0.9
    acc = pd.DataFrame({"cpu": a.groupby("cell")["adv_correct"].mean(), "dev": b.groupby("cell")["adv_correct"].mean()})
    assert ((acc["cpu"] - acc["dev"]).abs() <= 0.1).all(), acc
    assert b["in_ball"].all() and b["error"].isna().all()
    if DEVICE.startswith("cuda"):
        assert b["peak_mem_mb"].notna().all() and (b["peak_mem_mb"] > 0).all()
