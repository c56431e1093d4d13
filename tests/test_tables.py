"""Tables: the tidy summary and the papers' pivot, reported numbers, scoring, worst case, every
format (LaTeX compiled with pdflatex), terminal width, bad results directories, suites/cifar10.yaml."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from io import StringIO
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from scipy.stats import binomtest
from typer.testing import CliRunner

from robbench.cli.app import app
from robbench.report.formats.render import render, rich_renderable
from robbench.report.pivot import build_pivot
from robbench.report.summary import summarize
from robbench.results.load import load_results
from robbench.suite.reported import WORST
from tests.conftest import ROOT, base_suite
from tests.synth import bools, cell, write_results

runner = CliRunner()
N = 100
SRC1 = {"paper": "Paper A", "table": "Table 1"}
SRC2 = {"paper": "Paper A", "table": "Table 2"}


def paper_suite(**over: Any) -> dict[str, Any]:
    suite: dict[str, Any] = {
        "name": "paperlike",
        "data": {"dataset": "digits", "n_samples": N},
        "classifier": "digits-cnn",
        "threats": [{"norm": "linf", "eps": "8/255"}, {"norm": "l2", "eps": 0.5}],
        "defenses": [
            {"name": "pursamere", "id": "pur-8", "params": {"eps_pur": "8/255"}},
            {"name": "pursamere", "id": "pur-16", "params": {"eps_pur": "16/255"}},
            {"name": "adp", "id": "adp"},
        ],
        "attacks": [
            {"id": "clean", "name": "clean"},
            {"id": "gPGD", "name": "pgd", "gradient": "classifier", "norms": ["linf"]},
            {"id": "BPDA-det", "name": "pgd", "gradient": "bpda", "randomness": "det"},
        ],
        "evaluation": {"draws": 3, "overrides": ["few-draws"], "scoring": "worst"},
        "reported": [
            {"defense": "pur-8", "attack": "clean", "accuracy": 91.0, "source": SRC1},
            {
                "defense": "pur-8",
                "attack": "BPDA-det",
                "norm": "linf",
                "eps": "8/255",
                "accuracy": 48.17,
                "n": 10000,
                "source": SRC2,
            },
            {"defense": "pur-16", "attack": WORST, "norm": "linf", "eps": "8/255", "accuracy": 20.0, "source": SRC2},
            {
                "defense": "Other & Co_1",
                "attack": "BPDA-det",
                "norm": "l2",
                "eps": 0.5,
                "accuracy": 4.98,
                "reported_only": True,
                "source": {"paper": "Paper B", "note": "quoted"},
            },
        ],
    }
    suite.update(over)
    return suite


def paper_cells() -> list[dict[str, Any]]:
    """pur-8: clean 90, gPGD 85, BPDA 50 / 40. pur-16: clean 80, gPGD 78, BPDA 60 (samples 0-59) /
    55 (samples 10-64). adp (stochastic, 3 draws): see the scoring test."""
    three = [[True, True, True]] * 50 + [[True, False, True]] * 30 + [[False, False, False]] * 20
    return [
        cell("pur-8", "clean", "none", 0.0, bools(90, N)),
        cell(
            "pur-8",
            "gPGD",
            "linf",
            8 / 255,
            bools(85, N),
            trace=[[0.1 * k + i / N for k in range(10)] for i in range(N)],
        ),
        cell("pur-8", "BPDA-det", "linf", 8 / 255, bools(50, N)),
        cell("pur-8", "BPDA-det", "l2", 0.5, bools(40, N)),
        cell("pur-16", "clean", "none", 0.0, bools(80, N)),
        cell("pur-16", "gPGD", "linf", 8 / 255, bools(78, N)),
        cell("pur-16", "BPDA-det", "linf", 8 / 255, [10 <= i < 65 for i in range(N)]),
        cell("pur-16", "BPDA-det", "l2", 0.5, bools(45, N)),
        cell("adp", "clean", "none", 0.0, three, clean=three, stochastic=True),
        cell("adp", "gPGD", "linf", 8 / 255, three, clean=three, stochastic=True),
        cell("adp", "BPDA-det", "linf", 8 / 255, bools(30, N), stochastic=True, randomness="det"),
        cell("adp", "BPDA-det", "l2", 0.5, bools(20, N), stochastic=True, randomness="det"),
    ]


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_results(tmp_path_factory.mktemp("paper") / "res", paper_suite(), paper_cells())


def _line(summary: pd.DataFrame, defense: str, attack: str, norm: str = "linf") -> pd.Series:
    rows = summary[(summary.defense == defense) & (summary.attack == attack) & (summary.norm == norm)]
    assert len(rows) == 1, (defense, attack, norm, rows)
    return rows.iloc[0]


# ---- summary ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 7, 64, 364, 10000])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_wilson_closed_form_equals_scipy(n: int, level: float) -> None:
    from robbench.report.stats import wilson

    for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
        ci = binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
        assert wilson(k, n, level) == pytest.approx((ci.low, ci.high), abs=1e-12), (k, n, level)


def test_summary_accuracy_wilson_reported_and_diff(paper: Path) -> None:
    loaded = load_results(paper)
    s = summarize(loaded.rows, loaded.manifest)
    bpda = _line(s, "pur-8", "BPDA-det")
    assert bpda.n == N and bpda.accuracy == pytest.approx(0.50)
    ci = binomtest(50, N).proportion_ci(method="wilson")
    assert (bpda.ci_low, bpda.ci_high) == pytest.approx((ci.low, ci.high))
    assert bpda.reported == pytest.approx(0.4817) and bpda["diff"] == pytest.approx(0.50 - 0.4817)
    assert bpda.reported_in_ci and bpda.reported_n == 10000 and bpda.source == "Paper A, Table 2"
    clean = _line(s, "pur-8", "clean", "none")
    assert clean.reported == pytest.approx(0.91) and clean.eps_label == "" and clean.scoring == "deterministic"
    # a cell without a reported number has none
    assert pd.isna(_line(s, "pur-16", "gPGD").reported)


def test_worst_case_uses_samples_every_attack_ran_and_takes_reported(paper: Path) -> None:
    loaded = load_results(paper)
    s = summarize(loaded.rows, loaded.manifest)
    # pur-16 Linf: gPGD correct on 0-77, BPDA on 10-64 -> both on 10-64 = 55 of 100
    worst = _line(s, "pur-16", WORST)
    assert worst.n == N and worst.accuracy == pytest.approx(0.55) and worst.scoring == "min over 2 attacks"
    assert worst.reported == pytest.approx(0.20) and not worst.reported_in_ci
    # L2 has one attack per defense: no worst-case line
    assert s[(s.attack == WORST) & (s.norm == "l2")].empty
    # a partial cell (an attack that ran on fewer samples) shrinks n to the samples both attacks have
    rows = loaded.rows[
        ~(
            (loaded.rows.defense == "pur-16")
            & (loaded.rows.attack == "gPGD")
            & loaded.rows.sample_id.isin([f"digits/test/{i}" for i in range(10)])
        )
    ]
    partial = _line(summarize(rows, loaded.manifest), "pur-16", WORST)
    assert partial.n == N - 10 and partial.accuracy == pytest.approx(55 / 90)


def test_stochastic_scoring_modes_are_applied_and_labelled(paper: Path) -> None:
    loaded = load_results(paper)
    # adp gPGD: 50 samples right on all 3 draws, 30 right on 2 of 3 (first draw right), 20 never
    expect = {"worst": 0.50, "single": 0.80, "majority": 0.80, "mean": (50 * 3 + 30 * 2) / 300}
    for scoring, acc in expect.items():
        s = summarize(loaded.rows, loaded.manifest, scoring=scoring)
        line = _line(s, "adp", "gPGD")
        assert line.accuracy == pytest.approx(acc), scoring
        assert (
            line.scoring
            == {
                "worst": "worst of 3 draws (override)",
                "single": "first of 3 draws (override)",
                "majority": "majority of 3 draws (override)",
                "mean": "mean of 3 draws (override)",
            }[scoring]
        )
    s = summarize(loaded.rows, loaded.manifest)
    # judged on the attacker's seeds alone (one draw): only the named det-seeds-judge protocol allows it
    assert _line(s, "adp", "BPDA-det").scoring == "det-seed (override)"
    assert _line(s, "adp", "gPGD").clean_accuracy == pytest.approx(0.50)  # clean scored the same way


def test_reported_only_rows_are_shown_not_dropped(paper: Path) -> None:
    loaded = load_results(paper)
    s = summarize(loaded.rows, loaded.manifest)
    other = s[s.defense == "Other & Co_1"]
    assert len(other) == 1 and bool(other.iloc[0].reported_only) and other.iloc[0].n == 0
    assert other.iloc[0].reported == pytest.approx(0.0498) and other.iloc[0].source == "Paper B (quoted)"
    assert s.defense.tolist()[-1] == "Other & Co_1"  # after the measured defenses
    assert list(dict.fromkeys(s.defense)) == ["pur-8", "pur-16", "adp", "Other & Co_1"]  # suite order


def test_reported_number_of_a_cell_without_rows_is_shown_as_not_measured(paper: Path) -> None:
    loaded = load_results(paper)
    rows = loaded.rows[
        ~((loaded.rows.defense == "pur-8") & (loaded.rows.attack == "BPDA-det") & (loaded.rows.norm == "linf"))
    ]
    s = summarize(rows, loaded.manifest)
    line = _line(s, "pur-8", "BPDA-det")
    assert line.n == 0 and line.scoring == "not measured" and line.reported == pytest.approx(0.4817)
    assert not line.reported_only and list(dict.fromkeys(s.defense))[0] == "pur-8"  # stays with its defense
    # --no-worst-case leaves out the worst-case lines together with their reported number
    no_worst = summarize(loaded.rows, loaded.manifest, worst_case=False)
    assert no_worst[no_worst.attack == WORST].empty


def test_pivot_rows_columns_cells_and_sources(paper: Path) -> None:
    loaded = load_results(paper)
    p = build_pivot(summarize(loaded.rows, loaded.manifest), loaded.manifest, title="t")
    assert [r.defense for r in p.rows] == ["pur-8", "pur-16", "adp", "Other & Co_1"]
    assert [c.key for c in p.columns] == [
        "clean",
        "gPGD Linf 8/255",
        "BPDA-det Linf 8/255",
        "BPDA-det L2 0.5",
        f"{WORST} Linf 8/255",
    ]
    cellp = p.rows[0].cells["BPDA-det Linf 8/255"]
    assert cellp.accuracy == pytest.approx(0.5) and cellp.reported == pytest.approx(0.4817)
    assert p.sources == ["Paper A, Table 1", "Paper A, Table 2", "Paper B (quoted)"]
    assert p.source_ref(cellp.source) == 2
    adp = p.rows[2]
    assert adp.n_label == f"n={N}" and adp.scoring_label == "worst of 3 draws (override), det-seed (override)"
    only = p.rows[3]
    assert only.reported_only and not only.cells["BPDA-det L2 0.5"].measured and only.scoring_label == "reported only"
    from robbench.api import pivot

    via_api = pivot(paper)
    assert via_api.title == "paperlike" and via_api.to_dict()["rows"] == p.to_dict()["rows"]


# ---- formats ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("pivot", [False, True], ids=["tidy", "pivot"])
@pytest.mark.parametrize("fmt", ["rich", "md", "csv", "latex", "json"])
def test_cli_table_every_format(paper: Path, fmt: str, pivot: bool) -> None:
    res = runner.invoke(app, ["table", str(paper), "--format", fmt, *(["--pivot"] if pivot else [])])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "BPDA-det" in out and "Other" in out
    if fmt == "json":
        data = json.loads(out)
        if pivot:
            row = data["rows"][0]
            assert row["defense"] == "pur-8" and row["cells"]["BPDA-det Linf 8/255"]["reported"] == pytest.approx(
                0.4817
            )
        else:
            line = [r for r in data if r["defense"] == "pur-8" and r["attack"] == "BPDA-det" and r["norm"] == "linf"][0]
            assert line["accuracy"] == pytest.approx(0.5) and line["diff"] == pytest.approx(0.0183)
    elif fmt == "csv":
        df = pd.read_csv(StringIO(out))
        if pivot:
            assert df.loc[df.defense == "pur-16", "gPGD Linf 8/255 | accuracy"].iloc[0] == pytest.approx(0.78)
        else:
            assert {
                "defense",
                "attack",
                "norm",
                "eps",
                "n",
                "accuracy",
                "ci_low",
                "ci_high",
                "reported",
                "diff",
                "source",
                "scoring",
            } <= set(df.columns)
    elif fmt == "md":
        assert "48.17" in out and "+1.8" in out and ("[2]" in out if pivot else "Paper A, Table 2" in out)
    elif fmt == "latex":
        assert "\\toprule" in out and "Other \\& Co\\_1" in out
    else:
        assert "48.17²" in out and "worst/3" in out


def _plain(renderable: Any, width: int) -> str:
    from rich.console import Console

    console = Console(width=width, record=True, file=StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize("width", [80, 100])
def test_rich_fits_the_terminal_without_truncation(paper: Path, width: int) -> None:
    loaded = load_results(paper)
    s = summarize(loaded.rows, loaded.manifest)
    tidy = _plain(rich_renderable(s, "paperlike: robust accuracy (%)", width=width), width)
    piv = _plain(rich_renderable(s, "paperlike", pivot=True, manifest=loaded.manifest, width=width), width)
    for text in (tidy, piv):
        assert max(len(line) for line in text.splitlines()) <= width
        assert "…" not in text  # nothing cut off
    # every tidy line is on one line: the row of pur-8's BPDA-det at Linf carries all its numbers
    row = [ln for ln in tidy.splitlines() if "BPDA-det" in ln and "Linf 8/255" in ln][0]
    for part in ("50.0", "[40.4,59.6]", "48.17²", "+1.8", "determ."):
        assert part in row, (part, row)
    assert (
        "n = 100 samples in every cell" in tidy
        and "worst/m = robust only if correct on all" in tidy
        and "worst/3" in tidy
    )
    assert "2. Paper A, Table 2" in piv and "50.0" in piv and "4.98³" in piv
    # issue 26 item 6: the protocol (gradient mode, randomness, EoT) of each attack, in a column when the terminal
    # has room, else listed once under the table
    flat = " ".join(tidy.split())
    if width >= 100:
        assert "full" in row and "protocol" in tidy and "protocol (gradient" not in flat
    else:
        assert "protocol (gradient, randomness, EoT): BPDA-det: full; BPDA-det: full, det; gPGD: full;" in flat


def test_quickstart_style_run_prints_a_readable_table(tmp_path: Path, write_suite, zoo_dir) -> None:  # type: ignore[no-untyped-def]
    """`robbench run` through a real subprocess at COLUMNS=80: no wrapped or truncated rows."""
    from tests.conftest import cli_cmd, cli_env

    suite = base_suite(
        threats=[{"norm": "linf", "eps": 0.05}, {"norm": "l2", "eps": 0.5}],
        reported=[
            {
                "defense": "none",
                "attack": "PGD5",
                "norm": "linf",
                "eps": 0.05,
                "accuracy": 90.0,
                "source": {"paper": "a paper with a long name", "table": "Table 9"},
            }
        ],
    )
    res = subprocess.run(
        cli_cmd("run", str(write_suite(suite)), "--out", str(tmp_path / "o"), "--quiet"),
        capture_output=True,
        text=True,
        env=cli_env(COLUMNS="80"),
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    table = res.stdout.split("\nchecks:")[0]  # the checks listed below are one (soft-wrapped) line each
    lines = table.splitlines()
    assert max(len(ln) for ln in lines) <= 80 and "…" not in table
    row = [ln for ln in lines if "PGD5" in ln and "Linf 0.05" in ln][0]
    assert "90¹" in row and "[" in row


# ---- LaTeX compiles ----------------------------------------------------------------------------------
DOC = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n%s\n\\end{document}\n"


def _pdflatex() -> str:
    """pdflatex with booktabs; missing: a failure under ROBBENCH_REQUIRE_REAL_DATA=1 (CI), else a skip."""
    exe = shutil.which("pdflatex")
    kpse = shutil.which("kpsewhich")
    missing = (
        "pdflatex"
        if exe is None
        else (
            "booktabs.sty"
            if kpse is None or subprocess.run([kpse, "booktabs.sty"], capture_output=True).returncode
            else None
        )
    )
    if missing:
        fix = "apt-get install -y --no-install-recommends texlive-latex-base texlive-latex-recommended"
        if os.environ.get("ROBBENCH_REQUIRE_REAL_DATA") == "1":
            pytest.fail(f"{missing} is missing: install it with `{fix}` (booktabs is in texlive-latex-recommended)")
        pytest.skip(f"{missing} is not installed ({fix})")
    assert exe is not None
    return exe


def compile_latex(body: str, folder: Path) -> subprocess.CompletedProcess[str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "doc.tex").write_text(DOC % body)
    return subprocess.run(
        [_pdflatex(), "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_latex_compiler_check_can_fail(tmp_path: Path) -> None:
    """The compile helper reports a broken table (so the next test is able to fail)."""
    res = compile_latex("\\begin{tabular}{ll}\\toprule a & b & c \\\\ \\bottomrule\\end{tabular}", tmp_path)
    assert res.returncode != 0 and "Extra alignment tab" in res.stdout


@pytest.mark.parametrize("pivot", [False, True], ids=["tidy", "pivot"])
def test_latex_output_compiles(paper: Path, tmp_path: Path, pivot: bool) -> None:
    loaded = load_results(paper)
    s = summarize(loaded.rows, loaded.manifest)
    tex = render(
        s,
        "latex",
        "paperlike_#1 & 100% {robust}",
        pivot=pivot,
        manifest=loaded.manifest,
        notes=["a note with _ and %"] if pivot else (),
    )
    res = compile_latex(tex, tmp_path)
    assert res.returncode == 0, res.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000
    assert "\\cmidrule" in tex if pivot else "\\addlinespace" in tex


# ---- bad input ---------------------------------------------------------------------------------------
def _bad_dirs(tmp: Path, good: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp / "empty"
    empty.mkdir(parents=True)
    foreign = tmp / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("hi")
    badjson = tmp / "badjson"
    shutil.copytree(good, badjson)
    (badjson / "manifest.json").write_text("{not json")
    notobj = tmp / "notobj"
    shutil.copytree(good, notobj)
    (notobj / "manifest.json").write_text("[1, 2]")
    nocells = tmp / "nocells"
    shutil.copytree(good, nocells)
    m = json.loads((nocells / "manifest.json").read_text())
    m["cells"] = "oops"
    (nocells / "manifest.json").write_text(json.dumps(m))
    torn = tmp / "torn"
    shutil.copytree(good, torn)
    shard = sorted((torn / "rows").glob("*/*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[: len(shard.read_bytes()) // 2])
    other = tmp / "other"
    shutil.copytree(good, other)
    m = json.loads((other / "manifest.json").read_text())
    m["cells"] = [dict(c, id="0" * 16) for c in m["cells"]]
    (other / "manifest.json").write_text(json.dumps(m))
    return {
        "missing": (tmp / "nope", "does not exist"),
        "empty": (empty, "is empty"),
        "foreign": (foreign, "no manifest.json"),
        "bad json": (badjson, "corrupt"),
        "not an object": (notobj, "corrupt: not a JSON object"),
        "no cells": (nocells, "corrupt: manifest.cells"),
        "torn shard": (torn, "is corrupt"),
        "rows of another suite": (other, "belong to cells of another suite"),
    }


@pytest.mark.parametrize("command", ["table", "table --pivot", "compare", "plot"])
def test_bad_results_directories_exit_2(paper: Path, tmp_path: Path, command: str) -> None:
    for what, (path, message) in _bad_dirs(tmp_path / command.replace(" ", "_"), paper).items():
        args = command.split() + [str(path)]
        if command == "compare":
            args = ["compare", str(paper), str(path)]
        elif command == "plot":
            args += ["--out", str(tmp_path / "plots")]
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (what, res.output)
        assert message in res.output and "fix:" in res.output, (what, res.output)
    assert not (tmp_path / "plots").exists()  # nothing written


def test_reported_from_another_suite_file(paper: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(paper_suite(name="different")))
    res = runner.invoke(app, ["table", str(paper), "--reported", str(other)])
    assert res.exit_code == 2 and "is suite 'different'" in res.output
    newer = paper_suite(
        reported=[
            {
                "defense": "pur-16",
                "attack": "gPGD",
                "norm": "linf",
                "eps": "8/255",
                "accuracy": 77.7,
                "source": {"paper": "Later"},
            }
        ]
    )
    same = tmp_path / "same.yaml"
    same.write_text(yaml.safe_dump(newer))
    res = runner.invoke(app, ["table", str(paper), "--reported", str(same), "--format", "json"])
    assert res.exit_code == 0, res.output
    line = [r for r in json.loads(res.stdout) if r["defense"] == "pur-16" and r["attack"] == "gPGD"][0]
    assert line["reported"] == pytest.approx(0.777) and line["source"] == "Later"


# ---- reported entries are checked in validate ---------------------------------------------------------
@pytest.mark.parametrize(
    "entry,message",
    [
        ({"defense": "nonexistent", "attack": "clean"}, "add `reported_only: true`"),
        ({"defense": "none", "attack": "clean", "reported_only": True}, "is a defense of this suite"),
        ({"defense": "none", "attack": "PGD9"}, "is not an attack id"),
        ({"defense": "none", "attack": "clean", "norm": "linf", "eps": 0.1}, "threat-free"),
        ({"defense": "none", "attack": "PGD5"}, "give norm and eps"),
        ({"defense": "none", "attack": "PGD5", "norm": "l2", "eps": 0.1}, "not one of the suite's threats"),
        ({"defense": "none", "attack": "PGD5", "norm": "lx", "eps": 0.1}, "norm must be one of"),
    ],
)
def test_validate_rejects_reported_entries_that_would_be_dropped(
    write_suite, entry: dict[str, Any], message: str
) -> None:  # type: ignore[no-untyped-def]
    rep = dict(entry, accuracy=50.0, source={"paper": "p"})
    res = runner.invoke(app, ["validate", str(write_suite(base_suite(reported=[rep])))])
    assert res.exit_code == 2 and message in res.output, res.output


def test_validate_rejects_worst_case_number_with_a_single_attack(write_suite) -> None:  # type: ignore[no-untyped-def]
    rep = {"defense": "none", "attack": WORST, "norm": "linf", "eps": 0.1, "accuracy": 5, "source": {"paper": "p"}}
    res = runner.invoke(app, ["validate", str(write_suite(base_suite(reported=[rep])))])
    assert res.exit_code == 2 and "needs two or more attacks" in res.output and "['PGD5']" in res.output
    two = base_suite(
        attacks=[
            {"id": "clean", "name": "clean"},
            {"id": "PGD5", "name": "pgd", "params": {"steps": 5}},
            {"id": "PGD3", "name": "pgd", "params": {"steps": 3}},
        ],
        reported=[rep],
    )
    res = runner.invoke(app, ["validate", str(write_suite(two, "two.yaml"))])
    assert res.exit_code == 0, res.output


def test_validate_rejects_reported_cell_the_attack_does_not_run(write_suite) -> None:  # type: ignore[no-untyped-def]
    suite = base_suite(
        defenses=[{"name": "none"}, {"name": "none", "id": "b"}],
        attacks=[{"id": "clean", "name": "clean"}, {"id": "PGD5", "name": "pgd", "defenses": ["b"]}],
        reported=[
            {"defense": "none", "attack": "PGD5", "norm": "linf", "eps": 0.1, "accuracy": 5, "source": {"paper": "p"}}
        ],
    )
    res = runner.invoke(app, ["validate", str(write_suite(suite))])
    assert res.exit_code == 2 and "does not run on defense 'none'" in res.output
    twice = base_suite(reported=[{"defense": "none", "attack": "clean", "accuracy": 5, "source": {"paper": "p"}}] * 2)
    res = runner.invoke(app, ["validate", str(write_suite(twice, "twice.yaml"))])
    assert res.exit_code == 2 and "give each number once" in res.output


# ---- suites/cifar10.yaml ------------------------------------------------------------------------------
CIFAR = ROOT / "suites" / "cifar10.yaml"


def test_cifar10_suite_validate_names_the_missing_data(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ROBBENCH_DATA_DIR"}
    from tests.conftest import cli_cmd

    res = subprocess.run(cli_cmd("validate", str(CIFAR)), capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "cifar10" in res.stderr and "--data-dir" in res.stderr and "Traceback" not in res.stderr


def test_cifar10_suite_parses_resolves_and_places_every_reported_number() -> None:
    from robbench.core import registry
    from robbench.core.components import parse_params
    from robbench.suite.load import read_suite
    from robbench.suite.reported import check_reported

    suite, _ = read_suite(CIFAR)
    for d in suite.defenses:  # every defense registered, its parameters valid
        parse_params(registry.defenses.get(d.name).Params, d.params, d.display)
    free = {}
    for a in suite.attacks:
        cls = registry.attacks.get(a.name)
        parse_params(cls.Params, a.params, a.id)
        free[a.id] = bool(cls.threat_free)
    check_reported(suite, free)
    numbers = {(r.defense, r.attack, r.norm): r.accuracy for r in suite.reported}
    pur = [
        ("pursamere-8", 91.18, 87.88, 48.17),
        ("pursamere-12", 88.45, 86.73, 63.35),
        ("pursamere-16", 85.68, 84.17, 69.08),
    ]
    for d, clean, gpgd, bpda in pur:
        assert numbers[(d, "clean", None)] == clean
        assert numbers[(d, "gPGD20", "linf")] == gpgd and numbers[(d, "BPDA20-det", "linf")] == bpda
    assert [numbers[("pursamere-16", "BPDA200-det", n)] for n in ("linf", "l2", "l1")] == [67.9, 66.9, 63.9]
    for d, row in (
        ("adp", [87.93, 37.65, 36.87, 57.81]),
        ("diffpure", [92.5, 42.2, 44.3, 60.8]),
        ("ADBM (Li et al. [12])", [91.9, 53.5, 63.3, 53.5]),
    ):
        assert [numbers[(d, "clean", None)]] + [numbers[(d, "BPDA-EoT", n)] for n in ("linf", "l2", "l1")] == row
    liu = [(r.defense, r.accuracy) for r in suite.reported if r.defense.startswith("Liu")]
    assert [a for _, a in liu] == [85.94, 16.8, 88.38, 4.98, 85.64, 17.09, 88.77, 39.16]
    assert all(r.reported_only for r in suite.reported if r.defense.startswith(("Liu", "ADBM")))
    assert numbers[("rdc", WORST, "linf")] == 73.24
    assert "84.6" in [r for r in suite.reported if r.defense == "pursamere-16" and r.attack == "clean"][0].source.note


def test_partial_run_is_said_under_the_table(tmp_path: Path) -> None:
    suite = {
        "name": "x",
        "data": {"dataset": "digits", "n_samples": 10},
        "classifier": "digits-cnn",
        "threats": [{"norm": "linf", "eps": 0.1}],
        "defenses": [{"name": "none"}],
        "attacks": [{"id": "clean", "name": "clean"}, {"id": "P", "name": "pgd"}],
    }
    res_dir = write_results(
        tmp_path / "r",
        suite,
        [cell("none", "clean", "none", 0.0, bools(9, 10)), cell("none", "P", "linf", 0.1, bools(2, 4))],
        status="running",
    )
    res = runner.invoke(app, ["table", str(res_dir)])
    assert res.exit_code == 0, res.output
    assert "the run is running" in res.output and "1 of 2 cells have fewer than the suite's 10 samples" in res.output
    res = runner.invoke(app, ["table", str(res_dir), "--pivot", "--format", "json"])
    assert any("fewer than" in n for n in json.loads(res.stdout)["notes"])


def test_protocol_names_mode_randomness_eot_and_the_transfer_surrogate() -> None:
    import pandas as pd

    from robbench.report.formats.tidy import protocol

    row = {"norm": "linf", "gradient": "bpda", "randomness": "fresh", "eot": 8, "evaluation": "adaptive"}
    assert protocol(pd.Series(row)) == "bpda, fresh, EoT 8"
    assert protocol(pd.Series({**row, "gradient": "classifier", "eot": 1})) == "classifier only, fresh"
    transfer = {**row, "gradient": "full", "randomness": "none", "evaluation": "upper bound (transfer)"}
    assert protocol(pd.Series(transfer)) == "transfer (surrogate's gradient)"  # not "full": no gradient of the defense
    assert protocol(pd.Series({**row, "norm": "none"})) == ""
