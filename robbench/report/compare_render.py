"""Rendering of a paired comparison (:mod:`robbench.report.compare`) as rich or markdown."""

from __future__ import annotations

import json

import pandas as pd

from robbench.report.compare import Comparison


# ---- rendering -----------------------------------------------------------------------------------
def _threat(norm: str, eps_label: str) -> str:
    from robbench.core.budget import threat_label

    return threat_label(norm, eps_label)


def _p(p: float) -> str:
    return "<1e-4" if p < 1e-4 else f"{p:.3g}"


def _pts(v: float) -> str:
    return "" if v != v else f"{100 * v:.1f}"


def one_sided(c: Comparison) -> list[str]:
    """``only in A (3 cells): none: clean, PGD20 Linf 0.1; ...``, one line per side and defense."""
    lines = []
    for side, df in (("A", c.only_a), ("B", c.only_b)):
        for defense, g in df.groupby("defense", sort=False):
            items = [
                f"{r['attack']} {_threat(r['norm'], r['eps_label'])}".strip() + f" (n={r['n']})"
                for _, r in g.iterrows()
            ]
            lines.append(f"only in {side}: {defense}: " + ", ".join(items))
    return lines


def to_markdown(c: Comparison) -> str:
    lines = [
        f"A = {c.a} (suite {c.a_suite}), B = {c.b} (suite {c.b_suite})",
        "",
        "| defense | attack | threat | n | A % | B % | B - A | only A | only B | McNemar p | |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for _, r in c.cells.iterrows():
        flag = ("REGRESSION" if r["regression"] else "") + ("" if r["same_config"] else " *")
        lines.append(
            f"| {r['defense']} | {r['attack']} | {_threat(r['norm'], r['eps_label'])} | {r['n']} | {_pts(r['acc_a'])} | "
            f"{_pts(r['acc_b'])} | {100 * r['diff']:+.1f} | {r['a_only']} | {r['b_only']} | {_p(r['p_value'])} | {flag.strip()} |"
        )
    lines += ["\n" + line for line in one_sided(c)]
    lines += [f"\nNote: {n}" for n in c.notes]
    lines.append("\n" + c.verdict())
    return "\n".join(lines) + "\n"


def to_rich(c: Comparison):  # type: ignore[no-untyped-def]
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    t = Table(
        title="B vs A: accuracy %, paired by sample",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
    )
    for head, right in (
        ("attack", False),
        ("threat", False),
        ("n", True),
        ("A %", True),
        ("B %", True),
        ("B-A", True),
        ("A only", True),
        ("B only", True),
        ("p", True),
        ("", False),
    ):
        t.add_column(head, justify="right" if right else "left", no_wrap=True)
    previous = None
    for _, r in c.cells.iterrows():
        if r["defense"] != previous:
            if previous is not None:
                t.add_section()
            t.add_row(Text(str(r["defense"]), style="bold"))
            previous = r["defense"]
        style = "bold red" if r["regression"] else ("green" if r["diff"] > 0 else "")
        flag = ("worse" if r["regression"] else "") + ("" if r["same_config"] else " *")
        t.add_row(
            "  " + str(r["attack"]),
            _threat(r["norm"], r["eps_label"]),
            str(r["n"]),
            _pts(r["acc_a"]),
            _pts(r["acc_b"]),
            Text(f"{100 * r['diff']:+.1f}", style=style),
            str(r["a_only"]),
            str(r["b_only"]),
            _p(r["p_value"]),
            Text(flag.strip(), style="bold red" if r["regression"] else "yellow"),
        )
    foot = [
        Text(f"A = {c.a} (suite {c.a_suite})", style="dim"),
        Text(f"B = {c.b} (suite {c.b_suite})", style="dim"),
        Text("A only / B only: samples only that side gets right; p: exact McNemar test on them", style="dim"),
    ]
    for line in one_sided(c):
        foot.append(Text(line, style="yellow"))
    foot += [Text(f"note: {n}", style="dim") for n in c.notes]
    foot.append(
        Text(c.verdict(), style="bold red" if not c.passed else ("bold green" if c.tolerance is not None else "dim"))
    )
    return Group(*([t] if not c.cells.empty else []), *foot)


def render(c: Comparison, fmt: str) -> str:
    """``md``, ``csv`` (matched cells; one-sided cells with side A/B) or ``json``."""
    if fmt == "md":
        return to_markdown(c)
    if fmt == "json":
        return json.dumps(c.to_dict(), indent=2) + "\n"
    if fmt == "csv":
        frames = [c.cells.assign(side="both")]
        frames += [df.assign(side=s) for s, df in (("A", c.only_a), ("B", c.only_b)) if not df.empty]
        return str(pd.concat(frames, ignore_index=True).to_csv(index=False))
    raise ValueError(f"unknown format {fmt!r} for compare; use rich, md, csv or json")
