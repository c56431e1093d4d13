"""Benchmark: `robbench report` page size, write time and render time in headless Chromium (issue 27: the
quickstart's page under 2 MB, rendered in under 2 s).

For a results folder (default results/digits_adaptive, 79 cells, 10112 rows; pass the quickstart's folder to
measure that one): the wall time of `robbench report` as a subprocess, the page's size, and the time headless
Chromium takes to load the page and dump its DOM (scripts run), beside the same for an empty page, side by side
and interleaved, 5 times each; the render time is the difference of the medians (Chromium's own start-up cancels).

Run: ``python benchmarks/bench_report.py [RESULTS_DIR]``
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import load_average

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 5


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - t0


def main(folder: str) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("error: needs chromium (Debian's package)")
    load0 = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        page, empty = Path(tmp) / "report.html", Path(tmp) / "empty.html"
        empty.write_text("<!DOCTYPE html><html><body></body></html>")
        write = timed([sys.executable, "-m", "robbench", "report", folder, "--out", str(page)])
        args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--dump-dom"]
        on_page, on_empty = [], []
        for _ in range(REPEATS):
            on_empty.append(timed([*args, empty.as_uri()]))
            on_page.append(timed([*args, page.as_uri()]))
        size = page.stat().st_size
    render = statistics.median(on_page) - statistics.median(on_empty)
    print(f"# robbench report on {folder}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load {' '.join(load0)}")
    print(f"page: {size / 1e6:.2f} MB (goal < 2 MB: {'met' if size < 2e6 else 'NOT met'})")
    print(f"robbench report (subprocess, imports included): {write:.2f} s")
    print(
        f"chromium load + dump-dom, median of {REPEATS}: page {statistics.median(on_page):.2f} s, empty page "
        f"{statistics.median(on_empty):.2f} s"
    )
    print(f"render time (difference): {render:.2f} s (goal < 2 s: {'met' if render < 2 else 'NOT met'})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "results" / "digits_adaptive"))
