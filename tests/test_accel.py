"""Optional speed-ups: bf16 autocast of the generative models only (identity, manifest, numbers),
channels-last and torch.compile (same predictions)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from robbench.api import run
from robbench.core import registry
from robbench.core.components import BuildContext, parse_params
from robbench.data.base import load_dataset
from robbench.results.store import ResultsDir
from robbench.run.accel import _AutocastForward, autocast_module, generative_modules, prepare_defense
from robbench.run.plan import Plan
from robbench.suite.load import parse_suite
from tests.conftest import base_suite

needs_pursamere = pytest.mark.skipif("pursamere" not in registry.defenses.names(), reason="pursamere not registered")


@pytest.fixture(autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    """One torch thread: on a loaded machine two OpenMP threads spin at barriers and the PurSAMERE
    runs below took minutes instead of seconds (measured: 7x slower with one competing process)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _pursamere(zoo_dir: Path):  # type: ignore[no-untyped-def]
    cls = registry.defenses.get("pursamere")
    ctx = BuildContext(dataset=load_dataset("digits"), device=torch.device("cpu"), zoo_dir=str(zoo_dir))
    ctx.classifier = ctx.model(parse_suite(yaml.safe_dump(base_suite())).classifier)
    d = cls(parse_params(cls.Params, dict(cls.example_params), "pursamere"), ctx).eval()
    return d, ctx.classifier


@needs_pursamere
def test_bf16_autocasts_the_generative_model_only(zoo_dir: Path) -> None:
    d, clf = _pursamere(zoo_dir)
    gens = generative_modules(d, exclude=clf)
    assert [type(g).__name__ for g in gens] == ["ScoreUNet"]
    x = load_dataset("digits").load("test").x[:8]
    with torch.no_grad():
        ref = d.purify(x)
        sig = torch.full((8,), 0.1)
        s32 = gens[0](x, sig)
    info = prepare_defense(d, classifier=clf, precision="bf16")
    assert info["generative_models"] == ["ScoreUNet"] and info["precision"] == "bf16"
    assert "forward" not in clf.__dict__  # the classifier is untouched
    with torch.no_grad():
        s16 = gens[0](x, sig)
        out = d.purify(x)
    assert s16.dtype == torch.float32 and out.dtype == torch.float32  # outputs back in fp32
    rel = float((s16 - s32).norm() / s32.norm())
    assert 1e-5 < rel < 0.05, rel  # reduced precision: different, but close
    assert float((out - ref).abs().max()) < 0.1
    assert autocast_module(gens[0], "bf16")  # idempotent: not wrapped twice
    wrapper = gens[0].__dict__["forward"]
    assert isinstance(wrapper, _AutocastForward) and not isinstance(wrapper.fn, _AutocastForward)


def test_generative_precision_enters_the_cell_identity_only_when_not_fp32() -> None:
    def cells(evaluation: dict) -> list[str]:  # type: ignore[type-arg]
        suite = base_suite(evaluation=evaluation)
        return [c.id for c in Plan(parse_suite(yaml.safe_dump(suite))).cells]

    fp32 = cells({"batch_size": 16})
    assert cells({"batch_size": 16, "generative_precision": "fp32"}) == fp32
    bf16 = cells({"batch_size": 16, "generative_precision": "bf16"})
    assert len(bf16) == len(fp32) and not set(bf16) & set(fp32)
    # ... but the fp32 cells' seeds, so a bf16 run differs from the fp32 one in arithmetic only
    plan = Plan(parse_suite(yaml.safe_dump(base_suite(evaluation={"batch_size": 16, "generative_precision": "bf16"}))))
    assert [c.seed_key for c in plan.cells] == fp32


@needs_pursamere
def test_a_bf16_run_is_recorded_and_close_to_fp32(write_suite, tmp_path: Path, zoo_dir: Path) -> None:  # type: ignore[no-untyped-def]
    cls = registry.defenses.get("pursamere")
    suite = base_suite(
        defenses=[{"name": "none"}, {"name": "pursamere", "params": dict(cls.example_params)}],
        attacks=[
            {"id": "clean", "name": "clean"},
            {"id": "PGD5", "name": "pgd", "params": {"steps": 5}, "defenses": ["none"]},
        ],
        data={"dataset": "digits", "n_samples": 16},
    )
    run(write_suite(suite, "a.yaml"), out=tmp_path / "fp32", quiet=True)
    suite["evaluation"] = {"batch_size": 16, "generative_precision": "bf16"}
    run(write_suite(suite, "b.yaml"), out=tmp_path / "bf16", quiet=True)
    manifest = ResultsDir(tmp_path / "bf16").read_manifest() or {}
    assert manifest["suite"]["evaluation"]["generative_precision"] == "bf16"
    order = ["defense", "attack", "sample_id"]
    a = ResultsDir(tmp_path / "fp32").read_rows().sort_values(order).reset_index(drop=True)
    b = ResultsDir(tmp_path / "bf16").read_rows().sort_values(order).reset_index(drop=True)
    assert set(a["cell"]).isdisjoint(set(b["cell"]))
    assert (a["seed"] == b["seed"]).all()  # the same draws and random starts
    pur = a["defense"] == "pursamere"
    assert (a.loc[pur, "clean_pred"] == b.loc[pur, "clean_pred"]).mean() >= 0.9
    # no generative model, nothing in bf16: the undefended rows are the fp32 rows exactly
    cols = ["sample_id", "attack", "clean_pred", "adv_pred", "pert_norm"]
    assert a.loc[~pur, cols].reset_index(drop=True).equals(b.loc[~pur, cols].reset_index(drop=True))


def test_channels_last_gives_the_same_predictions(write_suite, tmp_path: Path, zoo_dir: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_suite(base_suite(data={"dataset": "digits", "n_samples": 24}))
    run(path, out=tmp_path / "a", quiet=True)
    run(path, out=tmp_path / "b", quiet=True, channels_last=True)
    a = ResultsDir(tmp_path / "a").read_rows().sort_values(["cell", "sample_id"]).reset_index(drop=True)
    b = ResultsDir(tmp_path / "b").read_rows().sort_values(["cell", "sample_id"]).reset_index(drop=True)
    assert (a["cell"] == b["cell"]).all()  # a runtime option: no part of any identity
    assert (a["clean_pred"] == b["clean_pred"]).all() and (a["adv_pred"] == b["adv_pred"]).mean() >= 0.95
    assert (ResultsDir(tmp_path / "b").read_manifest() or {})["execution"]["channels_last"] is True


@pytest.mark.slow
def test_compile_gives_the_same_predictions(write_suite, tmp_path: Path, zoo_dir: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_suite(base_suite(data={"dataset": "digits", "n_samples": 24}))
    run(path, out=tmp_path / "a", quiet=True)
    run(path, out=tmp_path / "b", quiet=True, compile=True)
    a = ResultsDir(tmp_path / "a").read_rows().sort_values(["cell", "sample_id"]).reset_index(drop=True)
    b = ResultsDir(tmp_path / "b").read_rows().sort_values(["cell", "sample_id"]).reset_index(drop=True)
    assert (a["clean_pred"] == b["clean_pred"]).all() and (a["adv_pred"] == b["adv_pred"]).mean() >= 0.95
