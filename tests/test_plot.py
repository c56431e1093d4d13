"""`robbench plot`: robust accuracy vs eps, the trade-off over a defense parameter, loss traces;
PNGs from a real digits run; clear errors when there is nothing to draw or matplotlib is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from robbench.cli.app import app
from robbench.report.plot.results import plot_results
from robbench.report.plot.tradeoff import tradeoff_groups
from robbench.suite.model import DefenseSpec
from tests.conftest import base_suite, cli_env
from tests.synth import bools, cell, write_results

runner = CliRunner()


def _png(path: Path) -> np.ndarray:
    from matplotlib import image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    img = image.imread(str(path))
    assert img.shape[0] > 300 and img.shape[1] > 500 and float(img[..., :3].std()) > 0.05, img.shape
    return img


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, zoo_dir) -> Path:  # type: ignore[no-untyped-def]
    """A real digits run: the undefended classifier and quantisation at 2, 4 and 16 levels (a
    defense with one parameter varied), clean and BPDA-PGD at two Linf budgets and one L2."""
    import yaml

    from robbench.api import run

    d = tmp_path_factory.mktemp("plot")
    suite = base_suite(
        name="plots",
        data={"dataset": "digits", "n_samples": 30},
        threats=[{"norm": "linf", "eps": 0.05}, {"norm": "linf", "eps": 0.15}, {"norm": "l2", "eps": 1.0}],
        defenses=[{"name": "none"}]
        + [{"name": "quantize", "id": f"q{k}", "params": {"levels": k}} for k in (16, 2, 4)],
        attacks=[
            {"id": "clean", "name": "clean"},
            {"id": "BPDA4", "name": "pgd", "params": {"steps": 4}, "gradient": "bpda", "defenses": ["q16", "q2", "q4"]},
            {"id": "PGD4", "name": "pgd", "params": {"steps": 4}, "defenses": ["none"]},
        ],
        evaluation={"batch_size": 30},
    )
    path = d / "s.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    assert not run(path, out=d / "res", quiet=True, checks=False).failures
    return d / "res"


def test_plot_all_kinds_from_a_real_run(run_dir: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["plot", str(run_dir), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["loss_trace.png", "robust_vs_eps.png", "tradeoff_quantize_levels.png"]
    for name in names:
        _png(tmp_path / name)
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_tradeoff_group_read_from_the_manifest(run_dir: Path) -> None:
    from robbench.results.load import load_results

    groups, skipped = tradeoff_groups(load_results(run_dir).manifest.suite.defenses)
    assert len(groups) == 1 and not skipped
    g = groups[0]
    assert (g.name, g.param) == ("quantize", "levels")
    assert g.members == [("q2", 2), ("q4", 4), ("q16", 16)]  # sorted by the parameter's value


def test_tradeoff_groups_need_exactly_one_varying_parameter() -> None:
    manifest: dict[str, Any] = {
        "suite": {
            "defenses": [
                {"name": "pursamere", "id": "a", "params": {"eps_pur": "16/255", "score_model": {"zoo": "m"}}},
                {"name": "pursamere", "id": "b", "params": {"eps_pur": "8/255", "score_model": {"zoo": "m"}}},
                {"name": "adp", "id": "c", "params": {"steps": 2, "noise_std": 0.1}},
                {"name": "adp", "id": "d", "params": {"steps": 3, "noise_std": 0.2}},
                {"name": "none", "id": "e", "params": {}},
            ]
        }
    }
    groups, skipped = tradeoff_groups([DefenseSpec.model_validate(d) for d in manifest["suite"]["defenses"]])
    assert [(g.name, g.param, [m[0] for m in g.members]) for g in groups] == [("pursamere", "eps_pur", ["b", "a"])]
    assert len(skipped) == 1 and "'adp'" in skipped[0] and "noise_std" in skipped[0]


def test_two_sweeps_of_one_defense_are_two_groups() -> None:
    """The fashion_mnist suite's shape: an eps_pur sweep at two learning rates, plus an L2 setting that
    differs in two parameters and belongs to no sweep."""

    def pur(i: str, eps: float, **extra: Any) -> dict[str, Any]:
        return {"name": "pursamere", "id": i, "params": {"score_model": "m", "eps_pur": eps, **extra}}

    manifest: dict[str, Any] = {
        "suite": {
            "defenses": [
                pur("a1", 0.1),
                pur("a2", 0.2),
                pur("a15", 0.15),
                pur("b1", 0.1, lr_max=0.06),
                pur("b2", 0.2, lr_max=0.06),
                pur("l2", 1.5, norm="l2"),
            ]
        }
    }
    groups, skipped = tradeoff_groups([DefenseSpec.model_validate(d) for d in manifest["suite"]["defenses"]])
    got = sorted((g.name, g.param, [m[0] for m in g.members]) for g in groups)
    assert got == [
        ("pursamere (lr_max 0.06)", "eps_pur", ["b1", "b2"]),
        ("pursamere (lr_max default)", "eps_pur", ["a1", "a15", "a2"]),
    ]
    assert not skipped


def test_nothing_to_draw_is_a_clear_error(tmp_path: Path) -> None:
    suite = {
        "name": "x",
        "data": {"dataset": "digits", "n_samples": 10},
        "classifier": "digits-cnn",
        "threats": [{"norm": "linf", "eps": 0.1}],
        "defenses": [{"name": "none"}],
        "attacks": [{"id": "clean", "name": "clean"}],
    }
    res_dir = write_results(tmp_path / "r", suite, [cell("none", "clean", "none", 0.0, bools(9, 10))])
    res = runner.invoke(app, ["plot", str(res_dir), "--kind", "tradeoff", "--out", str(tmp_path / "p")])
    assert res.exit_code == 2 and "several settings of one parameter" in res.output
    res = runner.invoke(app, ["plot", str(res_dir), "--out", str(tmp_path / "p")])
    assert res.exit_code == 2 and "nothing to draw" in res.output and "only clean" in res.output
    res = runner.invoke(app, ["plot", str(res_dir), "--kind", "bars"])
    assert res.exit_code == 2 and "unknown plot kind" in res.output
    assert not (tmp_path / "p").exists()


def test_kind_all_skips_what_is_absent_and_says_so(tmp_path: Path) -> None:
    suite = {
        "name": "x",
        "data": {"dataset": "digits", "n_samples": 10},
        "classifier": "digits-cnn",
        "threats": [{"norm": "linf", "eps": 0.1}, {"norm": "l1", "eps": 2}],
        "defenses": [{"name": "none"}],
        "attacks": [{"id": "clean", "name": "clean"}, {"id": "P", "name": "pgd"}],
    }
    trace = [[1.0 + 0.1 * k for k in range(6)] for _ in range(10)]
    res_dir = write_results(
        tmp_path / "r",
        suite,
        [
            cell("none", "clean", "none", 0.0, bools(9, 10)),
            cell("none", "P", "linf", 0.1, bools(5, 10), trace=trace),
            cell("none", "P", "l1", 2.0, bools(3, 10)),
        ],
    )
    result = plot_results(res_dir, out=tmp_path / "p")
    assert sorted(p.name for p in result.paths) == ["loss_trace.png", "robust_vs_eps.png"]
    assert len(result.skipped) == 1 and result.skipped[0].startswith("tradeoff:")
    _png(tmp_path / "p" / "loss_trace.png")
    res = runner.invoke(app, ["plot", str(res_dir)])  # default folder: RESULTS/plots
    assert res.exit_code == 0 and (res_dir / "plots" / "robust_vs_eps.png").is_file()


def test_missing_matplotlib_names_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None; sys.argv = ['robbench', 'plot', sys.argv[1]]; "
        "from robbench.cli import main; main()"
    )
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=cli_env())
    assert res.returncode == 2, res.stderr
    assert "matplotlib" in res.stderr and "pip install 'robbench[plot]'" in res.stderr


def _capture(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[Any]:
    """Figures the plot module would save (the real drawing code, the figure kept for inspection)."""
    figs: list[Any] = []

    def keep(fig: Any, path: Path) -> Path:
        figs.append(fig)
        return path

    monkeypatch.setattr(module, "_save", keep)
    return figs


def test_trace_legend_names_the_protocol_and_bands_stay_apart(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Issue 26 item 7: two attacks on one defense get their own colours (bands that do not merge) and the
    legend names defense, attack and protocol (gradient mode, randomness, EoT)."""
    import pandas as pd

    from robbench.report.plot import trace

    figs = _capture(monkeypatch, trace)
    rows = [
        {"cell": c, "sample_id": str(i), "defense": "diffpure", "attack": a, "norm": "linf", "eps": 0.1,
         "gradient": g, "randomness": r, "eot": e, "loss_trace": [0.1 * i + k, 0.2 * i + k, 0.3 * i + k]}
        for k, (c, a, g, r, e) in enumerate([("c1", "PGD3", "full", "fresh", 8), ("c2", "BPDA3", "bpda", "det", 1)])
        for i in range(4)
    ]  # fmt: skip
    assert trace.plot_trace(pd.DataFrame(rows), tmp_path / "t.png", "t") is not None
    fig = figs[0]
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == ["diffpure: PGD3 (full, fresh, EoT 8)", "diffpure: BPDA3 (bpda, det)"]
    bands = [c.get_facecolor()[0][:3].tolist() for c in fig.axes[0].collections]
    assert len(bands) == 2 and bands[0] != bands[1]


def test_eps_legend_names_attack_and_protocol(monkeypatch: pytest.MonkeyPatch, run_dir: Path) -> None:
    from robbench.report.plot import eps
    from robbench.report.summary import summarize
    from robbench.results.load import load_results

    figs = _capture(monkeypatch, eps)
    loaded = load_results(run_dir)
    assert eps.plot_eps(summarize(loaded.rows, loaded.manifest), run_dir / "unused.png", "t") is not None
    texts = {t.get_text() for t in figs[0].legends[0].get_texts()}
    assert "none: PGD4 (full)" in texts and "q2: BPDA4 (bpda)" in texts, texts
