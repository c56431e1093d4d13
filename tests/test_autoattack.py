"""AutoAttack and Square through pyautoattack: exact agreement with direct pyautoattack calls, seeding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyautoattack
import pytest
import torch

from robbench.api import run
from robbench.attacks._thirdparty import batch_seed
from robbench.attacks.autoattack import AutoAttack, AutoAttackParams
from robbench.attacks.target import Target
from robbench.core.components import BuildContext, NoParams
from robbench.core.seeding import SampleRNG
from robbench.core.threat import ThreatModel
from robbench.data.base import load_dataset
from robbench.defenses.none import NoDefense
from robbench.results.store import ResultsDir
from tests.conftest import base_suite

EPS = 0.1
N = 8


def _rows(out: Path) -> pd.DataFrame:
    return ResultsDir(out).read_rows().sort_values(["attack", "sample_index"]).reset_index(drop=True)


def _compare_with_direct(
    write_suite,
    tmp_path: Path,
    model: torch.nn.Module,
    params: dict[str, Any],  # type: ignore[no-untyped-def]
    overrides: dict[str, int],
) -> None:
    suite = base_suite(
        data={"dataset": "digits", "n_samples": N},
        threats=[{"norm": "linf", "eps": EPS}],
        attacks=[
            {"id": "AA", "name": "autoattack", "params": params},
            {"id": "AA-batch", "name": "autoattack", "params": {**params, "batching": "batch"}},
        ],
        evaluation={"batch_size": N},
    )
    out = tmp_path / "res"
    report = run(write_suite(suite), out=out, quiet=True, checks=False, threads=1)
    assert not report.failures
    rows = _rows(out)
    data = load_dataset("digits").load("test")
    x, y = data.x[:N], data.y[:N]
    model = model.eval()

    def direct(xb: torch.Tensor, yb: torch.Tensor, seed: int) -> torch.Tensor:
        """pyautoattack used directly: its public API and attributes, the seed robbench recorded."""
        with torch.random.fork_rng(devices=[]):
            aa = pyautoattack.AutoAttack(
                model, norm="Linf", eps=EPS, seed=seed, version=params["version"], device="cpu"
            )
            if "square_queries" in overrides:
                aa.square.n_queries = overrides["square_queries"]
            if "targets" in overrides:
                aa.apgd_targeted.n_target_classes = overrides["targets"]
                aa.fab.n_target_classes = overrides["targets"]
            x_adv, _ = aa.run_standard_evaluation(xb, yb, batch_size=xb.shape[0])
        with torch.no_grad():
            return model(x_adv).argmax(1) == yb

    per_sample = rows[rows.attack == "AA"]
    expected = torch.cat([direct(x[i : i + 1], y[i : i + 1], int(per_sample.seed.iloc[i])) for i in range(N)])
    assert per_sample.adv_correct.tolist() == expected.tolist()
    batched = rows[rows.attack == "AA-batch"]
    expected_batch = direct(x, y, batch_seed([int(s) for s in batched.seed]))
    assert batched.adv_correct.tolist() == expected_batch.tolist()
    # not vacuous: AutoAttack breaks some points and leaves others robust
    assert 0 < int(expected.sum()) < N
    assert (per_sample.error.isna()).all() and per_sample.in_ball.all()
    assert (per_sample.forward_evals > 0).all()
    # a point misclassified when clean is not attacked (AutoAttack's first step), the others are
    assert ((per_sample.backward_evals > 0) == per_sample.clean_correct).all()


def test_autoattack_flags_equal_direct_pyautoattack_calls(write_suite, tmp_path: Path, digits_classifier) -> None:  # type: ignore[no-untyped-def]
    """Standard version (APGD-CE, APGD-T, FAB-T, Square) with fewer targets and queries, for speed."""
    overrides = {"square_queries": 100, "targets": 2}
    _compare_with_direct(write_suite, tmp_path, digits_classifier, {"version": "standard", **overrides}, overrides)


@pytest.mark.slow
def test_autoattack_standard_defaults_equal_direct_pyautoattack_calls(
    write_suite,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    digits_classifier,
) -> None:
    _compare_with_direct(write_suite, tmp_path, digits_classifier, {"version": "standard"}, {})


def test_autoattack_leaves_the_global_generator_alone(digits_classifier) -> None:  # type: ignore[no-untyped-def]
    ds = load_dataset("digits")
    data = ds.load("test")
    ctx = BuildContext(dataset=ds, device=torch.device("cpu"), classifier=digits_classifier)
    target = Target(NoDefense(NoParams(), ctx).eval())
    attack = AutoAttack(
        AutoAttackParams(version="custom", attacks=["apgd-ce", "square"], apgd_iter=5, square_queries=20)
    )
    rng = SampleRNG.for_samples(["a", "b", "c"], 0)
    state = torch.get_rng_state()
    x_adv = attack.run(target, data.x[:3], data.y[:3], ThreatModel("linf", EPS), rng=rng)
    assert torch.equal(torch.get_rng_state(), state)
    again = attack.run(target, data.x[:3], data.y[:3], ThreatModel("linf", EPS), rng=rng)
    assert torch.equal(x_adv, again)


def test_autoattack_sample_batching_rows_do_not_depend_on_batch_size(write_suite, tmp_path: Path, zoo_dir) -> None:  # type: ignore[no-untyped-def]
    params = {"version": "custom", "attacks": ["apgd-ce", "apgd-dlr", "square"], "apgd_iter": 10, "square_queries": 30}
    suite = base_suite(
        data={"dataset": "digits", "n_samples": 10},
        threats=[{"norm": "l2", "eps": 1.0}],
        defenses=[{"name": "random_noise", "params": {"sigma": 0.1}}],
        attacks=[
            {"id": "AA", "name": "autoattack", "params": params, "randomness": "det"},
            {"id": "square", "name": "square", "params": {"n_queries": 40}},
        ],
        evaluation={"batch_size": 10, "draws": 2, "overrides": ["few-draws"]},
    )
    path = write_suite(suite)
    run(path, out=tmp_path / "a", quiet=True, checks=False, threads=1)
    run(path, out=tmp_path / "b", quiet=True, checks=False, batch_size=3, threads=1)
    drop = ["seconds", "peak_mem_mb"]
    a, b = (_rows(tmp_path / k).drop(columns=drop) for k in "ab")
    pd.testing.assert_frame_equal(a, b)
    sq = a[a.attack == "square"]
    assert (sq.backward_evals == 0).all() and (sq.forward_evals > 0).all() and sq.in_ball.all()
    assert (a.error.isna()).all()
