"""Small inline SVG figures for the HTML report (no plotting library: the page stays torch- and matplotlib-free)."""

from __future__ import annotations

from html import escape

#: colour-blind-safe palette (Okabe & Ito)
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

Series = tuple[str, list[tuple[float, float]], bool]  # (label, (eps, accuracy in [0, 1]) points, upper bound)


def line_chart(title: str, series: list[Series], *, width: int = 520, height: int = 300) -> str:
    """Robust accuracy (%) against the budget, one line per series; dashed where only an upper bound."""
    left, right, top, bottom = 48, 170, 28, 40
    pw, ph = width - left - right, height - top - bottom
    xs = sorted({x for _, pts, _ in series for x, _ in pts})
    if not xs:
        return ""
    x_of = {x: left + (pw * i / max(1, len(xs) - 1) if len(xs) > 1 else pw / 2) for i, x in enumerate(xs)}

    def y(v: float) -> float:
        return top + ph * (1 - v)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" style="font:11px sans-serif">',
        f'<text x="{left}" y="16" font-weight="600">{escape(title)}</text>',
    ]
    for v in (0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{int(v * 100)}</text>')
    for x in xs:
        out.append(f'<text x="{x_of[x]:.1f}" y="{top + ph + 16}" text-anchor="middle">{x:g}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle">budget (eps)</text>')
    out.append(
        f'<text x="12" y="{top + ph / 2:.1f}" transform="rotate(-90 12 {top + ph / 2:.1f})" '
        'text-anchor="middle">robust accuracy %</text>'
    )
    for i, (label, pts, ub) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        pts = sorted(pts)
        path = " ".join(f"{x_of[px]:.1f},{y(py):.1f}" for px, py in pts)
        dash = ' stroke-dasharray="5,3"' if ub else ""
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{path}"/>')
        for px, py in pts:
            out.append(f'<circle cx="{x_of[px]:.1f}" cy="{y(py):.1f}" r="3" fill="{colour}"/>')
        ly = top + 14 * i
        out.append(
            f'<line x1="{left + pw + 12}" x2="{left + pw + 32}" y1="{ly}" y2="{ly}" stroke="{colour}" '
            f'stroke-width="2"{dash}/>'
        )
        out.append(f'<text x="{left + pw + 36}" y="{ly + 4}">{escape(label)}{" (upper bound)" if ub else ""}</text>')
    out.append("</svg>")
    return "".join(out)
