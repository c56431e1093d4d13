"""What every figure shares: the matplotlib import (Agg, the ``plot`` extra), saving, colours."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robbench.errors import RobbenchError

KINDS = ("eps", "tradeoff", "trace")


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


@dataclass
class PlotResult:
    """The PNGs written, and the kinds that had nothing to draw (with the reason)."""

    paths: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _mpl() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise RobbenchError(
            "plotting needs matplotlib, which is not installed", hint="pip install 'robbench[plot]'"
        ) from None
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure


def _save(fig: Any, path: Path) -> Path:
    from robbench.core.io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_") or "x"


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def line_label(defense: str, attack: str, first: Any) -> str:
    """``defense: attack (protocol)`` for a legend, e.g. ``diffpure: PGD10 (full, fresh, EoT 8)``; ``first``
    is a row or summary line of the cell (its gradient, randomness, EoT and norm)."""
    from robbench.report.formats.tidy import protocol

    how = protocol(first)
    return f"{defense}: {attack}" + (f" ({how})" if how else "")
