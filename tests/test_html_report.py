"""``robbench report`` (issue 27): one self-contained HTML page, opened in headless Chromium: every defense
and threat appears, every number equals ``robbench table --format json``, no upper bound without its mark,
no network resource; bad inputs get one clear message and no file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from robbench.cli import app
from robbench.core.budget import format_eps, threat_label
from tests.conftest import base_suite

runner = CliRunner()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, zoo_dir: Path) -> Path:
    """A small real run: a deterministic and a stochastic defense, an adaptive and a gray-box attack, two norms."""
    folder = tmp_path_factory.mktemp("report")
    suite = base_suite(
        threats=[{"norm": "linf", "eps": 0.1}, {"norm": "l2", "eps": 1.0}],
        defenses=[{"name": "none"}, {"name": "random_noise", "params": {"sigma": 0.3}}],
        attacks=[
            {"id": "clean", "name": "clean"},
            {"id": "PGD10", "name": "pgd", "params": {"steps": 10}, "eot": 2},
            {
                "id": "gPGD10",
                "name": "pgd",
                "params": {"steps": 10},
                "gradient": "classifier",
                "defenses": ["random_noise"],
            },
        ],
        data={"dataset": "digits", "n_samples": 16},
    )
    path = folder / "suite.yaml"
    import yaml

    path.write_text(yaml.safe_dump(suite))
    out = folder / "res"
    res = runner.invoke(
        app, ["run", str(path), "--out", str(out), "--zoo-dir", str(zoo_dir), "--quiet", "--table", "none"]
    )
    assert res.exit_code == 0, res.output
    return out


def _page(results: Path, tmp_path: Path, *extra: Path) -> tuple[Path, str]:
    page = tmp_path / "report.html"
    res = runner.invoke(app, ["report", str(results), *map(str, extra), "--out", str(page)])
    assert res.exit_code == 0, res.output
    return page, page.read_text()


def test_the_page_carries_every_number_of_the_table(results: Path, tmp_path: Path) -> None:
    page, html = _page(results, tmp_path)
    assert page.stat().st_size < 2_000_000
    table = json.loads(runner.invoke(app, ["table", str(results), "--format", "json"]).stdout)
    values = {float(v) for v in re.findall(r'data-v="([0-9.e-]+)"', html)}
    for line in table:
        assert line["defense"] in html
        if line["norm"] != "none":
            assert threat_label(line["norm"], format_eps(line["eps"])) in html
        if line["n"]:
            assert line["accuracy"] in values, line
    # no upper bound without its mark: every cell of an upper-bound row shows the dagger and "≤"
    for row in re.findall(r"<tr>.*?</tr>", html):
        if "upper bound (" in row and 'data-v="' in row:
            assert "≤" in row and "†" in row, row
    # self-contained: nothing fetched from anywhere
    assert not re.search(r'(src|href)="(https?:)?//', html) and "@import" not in html


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("ROBBENCH_REQUIRE_REAL_DATA"), reason="no chromium")
def test_headless_chromium_renders_the_page(results: Path, tmp_path: Path) -> None:
    assert CHROMIUM is not None, "install Debian's chromium (.ci/run does)"
    page, _ = _page(results, tmp_path)
    shot = tmp_path / "page.png"
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1600"]
    subprocess.run([*args, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000  # a real rendering, not a blank page
    dom = subprocess.run([*args, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True)
    for text in ("Leaderboard", "random_noise", "Linf 0.1", "L2 1", "worst-case", "What was run", "upper bound"):
        assert text in dom.stdout, text


#: hosts of Chromium's own background services (clock, accounts, dictionaries), which it contacts whatever page
#: it opens; every other URL in the network log is a request the page made
CHROMIUM_SERVICES = ("google.com", "gvt1.com", "googleapis.com", "gstatic.com")


def _page_requests(page: Path, tmp_path: Path) -> set[str]:
    """URLs headless Chromium requested while opening ``page``, from its network log (NetLog)."""
    assert CHROMIUM is not None
    log = tmp_path / f"{page.stem}.netlog.json"
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--log-net-log={log}"]
    subprocess.run([*args, "--dump-dom", page.as_uri()], capture_output=True, timeout=120, check=True)
    urls = set(re.findall(r'"url":"([^"]+)"', log.read_text()))
    return {
        u
        for u in urls
        if u != page.as_uri() and not re.match(rf"https?://([^/]*\.)?({'|'.join(CHROMIUM_SERVICES)})/", u)
    }


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("ROBBENCH_REQUIRE_REAL_DATA"), reason="no chromium")
def test_the_page_makes_no_network_request_in_the_browser(results: Path, tmp_path: Path) -> None:
    """Checked in the browser's own network log; the control page with one external image shows the log sees
    such a request."""
    assert CHROMIUM is not None, "install Debian's chromium (.ci/run does)"
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><html><body><img src="http://robbench.invalid/x.png"></body></html>')
    assert _page_requests(control, tmp_path) == {"http://robbench.invalid/x.png"}
    page, html = _page(results, tmp_path)
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert _page_requests(page, tmp_path) == set()


def test_two_folders_get_a_paired_comparison(results: Path, tmp_path: Path) -> None:
    _, html = _page(results, tmp_path, results)
    assert "Paired comparison" in html and "McNemar" in html


@pytest.mark.parametrize("case", ["not-results", "missing", "out-is-folder", "out-in-missing-folder", "empty-out"])
def test_bad_input_gets_one_message_and_no_file(results: Path, tmp_path: Path, case: str) -> None:
    target: Any = tmp_path / "r.html"
    source = results
    if case == "not-results":
        source = tmp_path / "plain"
        source.mkdir()
    elif case == "missing":
        source = tmp_path / "nope"
    elif case == "out-is-folder":
        target = tmp_path
    elif case == "out-in-missing-folder":
        target = tmp_path / "no" / "r.html"
    elif case == "empty-out":
        target = ""
    res = runner.invoke(app, ["report", str(source), "--out", str(target)])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "error:" in res.output
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "no").exists()
