"""``robbench report``: one self-contained HTML page per evaluation (styles, script and figures inline).

Everything on the page comes from the stored rows and manifests (:func:`load_results`, :func:`summarize`,
:func:`compare`), so its numbers are exactly those of ``robbench table`` / ``compare``; the page loads
nothing from the network. Torch-free.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from pathlib import Path

from robbench import __version__
from robbench.core.budget import threat_label
from robbench.core.io import atomic_write_text
from robbench.errors import ResultsError
from robbench.report.compare import compare
from robbench.report.formats.numbers import pct
from robbench.report.html import sections
from robbench.report.html.assets import CSS, JS
from robbench.report.html.gallery import gallery
from robbench.report.summary import is_missing, summarize
from robbench.results.load import Loaded, load_results

#: the page may load nothing: every browser that opens it refuses any request the page might make
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def _folder_section(i: int, loaded: Loaded) -> str:
    summary = summarize(loaded.rows, loaded.manifest)
    notes = list(loaded.notes)
    if len(loaded.manifest.code_versions) > 1:
        notes.append("the rows come from more than one code version (listed under 'What was run')")
    banner = "".join(f'<p class="note">{escape(n)}</p>' for n in notes)
    name = escape(loaded.suite_name)
    return (
        f'<section id="run-{i}"><h1>{name} <span class="legend">({escape(str(loaded.path))})</span></h1>{banner}'
        f"<h2>Leaderboard</h2><p class='legend'>Per threat, each defense's headline line: the per-sample worst "
        "case over its attacks (or its one attack), ranked. An upper bound (†, shown as ≤, hatched bar) is not a "
        "measurement: the defense itself was not attacked, so it is listed after the ranked defenses, unranked.</p>"
        f"{sections.leaderboard(summary)}"
        f"<h2>Figures</h2>{sections.figures(summary)}"
        f"<h2>Every cell</h2>{sections.cell_table(summary, f'cells-{i}')}"
        f"{gallery(loaded)}"
        f"<h2>Checks</h2>{sections.checks(loaded)}"
        f"<h2>What was run</h2>{sections.what_was_run(loaded)}</section>"
    )


def _comparison(a: Path, b: Path) -> str:
    c = compare(a, b)
    rows = []
    for _, r in c.cells.iterrows():
        threat = "" if r["norm"] == "none" else threat_label(str(r["norm"]), str(r["eps_label"]))
        p = "" if is_missing(r["p_value"]) else f"{float(r['p_value']):.3g}"
        rows.append(
            f"<tr><td>{escape(str(r['defense']))}</td><td>{escape(str(r['attack']))}</td><td>{escape(threat)}</td>"
            f"<td class='num'>{int(r['n'])}</td><td class='num'>{pct(r['acc_a'])}</td>"
            f"<td class='num'>{pct(r['acc_b'])}</td><td class='num'>{100 * float(r['diff']):+.1f}</td>"
            f"<td class='num'>{int(r['a_only'])}</td><td class='num'>{int(r['b_only'])}</td>"
            f"<td class='num'>{p}</td></tr>"
        )
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in c.notes)
    return (
        f"<section><h1>Paired comparison</h1><p>A = {escape(str(a))}, B = {escape(str(b))}: the same samples, "
        "robust in only one of them, exact McNemar p.</p>" + notes + "<table class='sortable'><thead><tr>"
        "<th>defense</th><th>attack</th><th>threat</th><th class='num'>n</th><th class='num'>A %</th>"
        "<th class='num'>B %</th><th class='num'>B - A</th><th class='num'>only A</th><th class='num'>only B</th>"
        "<th class='num'>McNemar p</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></section>"
    )


def render_report(paths: list[str | Path]) -> str:
    """The page for one or more results folders (several: each, then the first paired with every other)."""
    if not paths:
        raise ResultsError("no results folder given", hint="robbench report RESULTS_DIR [RESULTS_DIR ...]")
    loaded = [load_results(p) for p in paths]
    body = "".join(_folder_section(i, ld) for i, ld in enumerate(loaded))
    body += "".join(_comparison(Path(paths[0]), Path(p)) for p in paths[1:])
    title = " vs ".join(escape(ld.suite_name) for ld in loaded)
    stamp = f"robbench {__version__}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>robbench report: {title}</title><style>{CSS}</style></head><body>{body}"
        f'<p class="legend">Written by {escape(stamp)} from the stored rows; no network resources.</p>'
        f"<script>{JS}</script></body></html>"
    )


def write_report(paths: list[str | Path], out: str | Path) -> Path:
    """Render and write atomically; nothing is written when rendering fails."""
    if not str(out).strip():
        raise ResultsError("--out is empty", hint="pass a file name, e.g. --out report.html")
    target = Path(out)
    if target.is_dir():
        raise ResultsError(f"--out {target} is a folder", hint="pass a file name, e.g. --out report.html")
    html = render_report(paths)
    parent = target.resolve().parent
    if not parent.is_dir():
        raise ResultsError(
            f"cannot write {target}: folder {parent} does not exist", hint="create it or pick another --out"
        )
    try:
        atomic_write_text(target, html)
    except OSError as exc:
        raise ResultsError(f"cannot write {target}: {exc.strerror}", hint="choose a writable --out") from None
    return target


__all__ = ["render_report", "write_report"]
