"""The sections of the HTML report, each from one results folder's summary and manifest (stored data only)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

import pandas as pd

from robbench.core.budget import format_eps, threat_label
from robbench.report.formats.numbers import pct
from robbench.report.formats.tidy import protocol
from robbench.report.html.assets import CHECK_HELP
from robbench.report.html.svg import Series, line_chart
from robbench.report.summary import is_missing
from robbench.results.load import Loaded
from robbench.suite.reported import WORST


def _e(v: Any) -> str:
    return escape(str(v))


def _mark(evaluation: str) -> str:
    """The visible mark of an evaluation kind: an upper bound is never shown as a bare number."""
    if evaluation.startswith("upper bound"):
        return ' <span class="ub" title="upper bound: the defense itself was not attacked">† upper bound</span>'
    if evaluation == "adaptive (weak)":
        return ' <span class="weak" title="below the strength floor">ʷ weak</span>'
    return ""


def _acc_cell(row: pd.Series) -> str:
    if is_missing(row.get("accuracy")):
        return '<td class="num">-</td>'
    ev = str(row.get("evaluation") or "")
    prefix = "≤ " if ev.startswith("upper bound") else ""
    return f'<td class="num" data-v="{float(row["accuracy"])!r}">{prefix}{pct(row["accuracy"])}{_mark(ev)}</td>'


def _ci(row: pd.Series) -> str:
    if is_missing(row.get("ci_low")):
        return "<td></td>"
    return f'<td class="ci">[{pct(row["ci_low"])}, {pct(row["ci_high"])}]</td>'


def what_was_run(loaded: Loaded) -> str:
    m, s = loaded.manifest, loaded.manifest.suite
    env = m.environment or {}
    threats = ", ".join(threat_label(t.norm, format_eps(t.eps)) for t in s.threats)
    rows = [
        ("data", f"{s.data.dataset} / {s.data.split}, n = {m.n_samples}"),
        (
            "classifier",
            json.dumps(s.classifier.model_dump(exclude_none=True)) if s.classifier else "(the defenses' own)",
        ),
        ("threats", threats),
        (
            "judging",
            f"stochastic defenses: {s.evaluation.scoring} of {s.evaluation.judge_draws} draws"
            + (f"; overrides: {', '.join(s.evaluation.overrides)}" if s.evaluation.overrides else ""),
        ),
        (
            "code",
            f"robbench {env.get('robbench', '?')}, results version {env.get('results_version', '?')}, git "
            f"{(m.git_sha or 'unknown')[:12]}{' (uncommitted changes)' if m.git_dirty else ''}",
        ),
        ("run", f"{m.status or '?'}; started {m.started or '?'}; {m.seconds or '?'} s on {m.device or '?'}"),
        ("rerun", f"<code>{_e(m.rerun)}</code>"),
    ]
    if len(m.code_versions) > 1:
        rows.append(("rows from", "; ".join(json.dumps(v, sort_keys=True) for v in m.code_versions)))
    body = "".join(f"<tr><td>{_e(k)}</td><td>{v if k == 'rerun' else _e(v)}</td></tr>" for k, v in rows)
    defenses = "".join(
        f"<tr><td>{_e(d.display)}</td><td>{_e(d.name)}</td><td><code>{_e(json.dumps(d.params))}</code></td></tr>"
        for d in s.defenses
    )
    attacks = "".join(
        f"<tr><td>{_e(a.id)}</td><td>{_e(a.name)}</td><td>{_e(a.gradient)}</td><td>{_e(a.randomness)}</td>"
        f"<td class='num'>{a.eot}</td><td>{_e(a.evaluation)}</td><td><code>{_e(json.dumps(a.params))}</code></td></tr>"
        for a in s.attacks
    )
    return (
        f'<table class="meta">{body}</table>'
        "<h3>Defenses</h3><table><tr><th>id</th><th>defense</th><th>parameters</th></tr>" + defenses + "</table>"
        "<h3>Attacks</h3><table><tr><th>id</th><th>attack</th><th>gradient</th><th>randomness</th>"
        "<th class='num'>EoT</th><th>kind</th><th>parameters</th></tr>" + attacks + "</table>"
    )


def headline_lines(summary: pd.DataFrame) -> pd.DataFrame:
    """Per defense and threat, the line that states its robustness: the worst case over its attacks, or its
    one attack's line where it has a single one."""
    attacked = summary[(summary["norm"] != "none") & (summary["n"] > 0)]
    out = []
    for _, g in attacked.groupby(["defense", "norm", "eps"], sort=False):
        worst = g[g["attack"] == WORST]
        out.append(worst.iloc[0] if len(worst) else g.sort_values("accuracy").iloc[0])
    return pd.DataFrame(out)


def leaderboard(summary: pd.DataFrame) -> str:
    lines = headline_lines(summary)
    if lines.empty:
        return "<p>No attacked cell has rows yet.</p>"
    singles = summary[(summary["attack"] != WORST) & (summary["norm"] != "none") & (summary["n"] > 0)]
    cost = singles.groupby(["defense", "norm", "eps"])["model_evals"].sum()
    strongest = singles.sort_values("accuracy", kind="stable").groupby(["defense", "norm", "eps"])["attack"].first()
    parts = []
    for (norm, eps), g in lines.groupby(["norm", "eps"], sort=False):
        label = threat_label(str(norm), str(g["eps_label"].iloc[0]))
        body = []
        # measured lines first, ranked; upper bounds after them, unranked: an upper bound never outranks a measurement
        ub = g["evaluation"].astype(str).str.startswith("upper bound")
        ranked = pd.concat(
            [g[~ub].sort_values("accuracy", ascending=False), g[ub].sort_values("accuracy", ascending=False)]
        )
        for rank, (_, r) in enumerate(ranked.iterrows(), 1):
            ev = str(r["evaluation"])
            shown_rank = "†" if ev.startswith("upper bound") else str(rank)
            width = 0 if is_missing(r["accuracy"]) else int(160 * float(r["accuracy"]))
            bar = f'<span class="bar{" ub" if ev.startswith("upper bound") else ""}" style="width:{width}px"></span>'
            evals = cost.get((r["defense"], norm, eps), float("nan"))
            best = strongest.get((r["defense"], norm, eps), "")
            body.append(
                f"<tr><td class='num'>{shown_rank}</td><td>{_e(r['defense'])}</td>{_acc_cell(r)}<td>{bar}</td>{_ci(r)}"
                f"<td class='num'>{pct(r['clean_accuracy'])}</td><td>{_e(r['attack'])}</td><td>{_e(best)}</td>"
                f"<td>{_e(ev)}</td>"
                f"<td class='num'>{'' if is_missing(evals) else f'{evals:,.0f}'}</td></tr>"
            )
        parts.append(
            f"<h3>{_e(label)}</h3><table class='sortable'><thead><tr><th class='num'>#</th><th>defense</th>"
            "<th class='num'>robust %</th><th></th><th>95% CI</th><th class='num'>clean %</th><th>line</th>"
            "<th>strongest attack</th>"
            "<th>evaluation</th><th class='num'>model evals / image</th></tr></thead><tbody>"
            + "".join(body)
            + "</tbody></table>"
        )
    return "".join(parts)


def cell_table(summary: pd.DataFrame, table_id: str) -> str:
    has_rep = "reported" in summary and summary["reported"].notna().any()
    head = ["defense", "attack", "threat", "n", "robust %", "95% CI", "clean %", "protocol", "scoring", "evaluation"]
    head += ["paper %", "diff", "source"] if has_rep else []
    rows = []
    for _, r in summary.iterrows():
        threat = "" if r["norm"] == "none" else threat_label(str(r["norm"]), str(r["eps_label"]))
        cells = [
            f"<td>{_e(r['defense'])}</td><td>{_e(r['attack'])}</td><td>{_e(threat)}</td>",
            f"<td class='num'>{'' if is_missing(r['n']) or int(r['n']) == 0 else int(r['n'])}</td>",
            _acc_cell(r),
            _ci(r),
            f"<td class='num'>{pct(r['clean_accuracy'])}</td><td>{_e(protocol(r))}</td>",
            f"<td>{_e(r['scoring'])}</td><td>{_e(r.get('evaluation') or '')}</td>",
        ]
        if has_rep:
            rep = "" if is_missing(r.get("reported")) else f"{float(r['reported']):.1f}"
            diff = "" if is_missing(r.get("diff")) else f"{100 * float(r['diff']):+.1f}"
            cells.append(f"<td class='num'>{rep}</td><td class='num'>{diff}</td><td>{_e(r.get('source') or '')}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    ths = "".join(f"<th>{_e(h)}</th>" for h in head)
    return (
        f'<input class="filter" data-table="{table_id}" placeholder="filter: defense, attack, threat...">'
        f'<table class="sortable" id="{table_id}"><thead><tr>{ths}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        '<p class="legend">† upper bound: gray-box or transfer attacks bound robustness from above and do not '
        "measure it (shown as ≤). ʷ weak: through the defense but below the strength floor. The worst-case line "
        "is the per-sample worst case over every attack of the defense.</p>"
    )


def checks(loaded: Loaded) -> str:
    records = loaded.manifest.checks
    if records is None:
        return "<p class='note'>The false-robustness checks were not run for these rows.</p>"
    flagged = [c for c in records if c.status == "flag"]
    passed = sorted({c.check for c in records if c.status == "ok"})
    items = "".join(
        f"<li><span class='flag'>FLAG {_e(c.check)}</span>: {_e(c.subject)}: {_e(c.message)}"
        f"<br><span class='legend'>{_e(CHECK_HELP.get(c.check, ''))}</span></li>"
        for c in flagged
    )
    ok = f"<p class='ok'>passed: {_e(', '.join(passed))}</p>" if passed else ""
    return (f"<ul>{items}</ul>" if items else "<p class='ok'>No check flagged anything.</p>") + ok


def figures(summary: pd.DataFrame) -> str:
    lines = headline_lines(summary)
    out = []
    for norm, g in lines.groupby("norm", sort=False):
        series: list[Series] = []
        for defense, d in g.groupby("defense", sort=False):
            pts = [(float(e), float(a)) for e, a in zip(d["eps"], d["accuracy"], strict=True) if not is_missing(a)]
            ub = all(str(v).startswith("upper bound") for v in d["evaluation"])
            series.append((str(defense), pts, ub))
        out.append(line_chart(f"{norm}: robust accuracy (headline line) vs budget", series))
    return "".join(out)
