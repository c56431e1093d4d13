"""AutoAttack and Square through pyautoattack: exact agreement with direct pyautoattack calls, seeding."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyautoattack
import torch

from robbench.api import run
from robbench.attacks._thirdparty import batch_seed
from robbench.data.base import load_dataset
from robbench.results import ResultsDir
from tests.conftest import base_suite

EPS = 0.15
N = 12


def _rows(out: Path) -> pd.DataFrame:
    return ResultsDir(out).read_rows().sort_values(["attack", "sample_index"]).reset_index(drop=True)


def test_autoattack_flags_equal_direct_pyautoattack_calls(write_suite, tmp_path: Path, digits_classifier) -> None:  # type: ignore[no-untyped-def]
    suite = base_suite(data={"dataset": "digits", "n_samples": N}, threats=[{"norm": "linf", "eps": EPS}],
                       attacks=[{"id": "AA", "name": "autoattack", "params": {"version": "standard"}},
                                {"id": "AA-batch", "name": "autoattack", "params": {"version": "standard", "batching": "batch"}}],
                       evaluation={"batch_size": N})
    out = tmp_path / "res"
    state = torch.get_rng_state()
    report = run(write_suite(suite), out=out, quiet=True, checks=False)
    assert not report.failures
    assert torch.equal(torch.get_rng_state(), state), "robbench's AutoAttack changed torch's global generator"
    rows = _rows(out)
    data = load_dataset("digits").load("test")
    x, y = data.x[:N], data.y[:N]
    model = digits_classifier.eval()

    def direct(xb: torch.Tensor, yb: torch.Tensor, seed: int) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            aa = pyautoattack.AutoAttack(model, norm="Linf", eps=EPS, seed=seed, version="standard", device="cpu")
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
    assert (per_sample.forward_evals > 0).all() and (per_sample.backward_evals > 0).all()


def test_autoattack_sample_batching_rows_do_not_depend_on_batch_size(write_suite, tmp_path: Path, zoo_dir) -> None:  # type: ignore[no-untyped-def]
    params = {"version": "custom", "attacks": ["apgd-ce", "apgd-dlr", "square"], "apgd_iter": 10, "square_queries": 30}
    suite = base_suite(data={"dataset": "digits", "n_samples": 10}, threats=[{"norm": "l2", "eps": 1.0}],
                       defenses=[{"name": "random_noise", "params": {"sigma": 0.1}}],
                       attacks=[{"id": "AA", "name": "autoattack", "params": params, "randomness": "det"},
                                {"id": "square", "name": "square", "params": {"n_queries": 40}}],
                       evaluation={"batch_size": 10, "draws": 2})
    path = write_suite(suite)
    run(path, out=tmp_path / "a", quiet=True, checks=False)
    run(path, out=tmp_path / "b", quiet=True, checks=False, batch_size=3)
    drop = ["seconds", "peak_mem_mb"]
    a, b = (_rows(tmp_path / k).drop(columns=drop) for k in "ab")
    pd.testing.assert_frame_equal(a, b)
    sq = a[a.attack == "square"]
    assert (sq.backward_evals == 0).all() and (sq.forward_evals > 0).all() and sq.in_ball.all()
    assert (a.error.isna()).all()
