"""What the progress bar's time left is computed from: each sample's cost, estimated and measured.

A clean sample and an RDC sample under 20-step EoT-8 PGD differ by thousands of times, so "samples left over
samples per second" is no estimate. Each cell gets a weight per sample: the defense passes its attack takes
(``(steps + 1) x restarts x EoT`` for a gradient attack, the queries of a query attack, plus the judge's
draws), times the defense's measured seconds per pass where rows of it are already stored (a resumed run),
relative to the mean over the measured defenses. The bar advances by weight.

Its time left comes from :class:`LiveCost`: each defense's seconds per pass, measured from stored rows (a
resume) and from every unit as it finishes (a fresh run learns them as it goes), times the passes left in that
defense's cells; a defense not measured yet is charged the mean rate of those that are. Nothing measured yet:
no time left is shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from robbench.core import registry
from robbench.core.components import parse_params

if TYPE_CHECKING:
    import pandas as pd

    from robbench.run.cells import Cell


def passes_per_sample(cell: Cell) -> float:
    """Estimated defense passes (forward or backward) one sample of ``cell`` costs."""
    if cell.threat is None:
        return float(cell.draws)
    cls = registry.attacks.get(cell.attack.name)
    params = parse_params(cls.Params, cell.attack.params, f"attack {cell.attack.id}")
    effort = cls.effort(params)
    restarts = int(getattr(params, "restarts", 1) or 1)
    if effort is None:
        work = 1.0
    elif effort[0] == "queries":
        work = float(effort[1])
    else:  # a forward and a backward per step, per EoT draw
        work = 2.0 * (effort[1] + 1) * max(cell.eot, 1) * max(cls.own_eot(params), 1)
    return work * restarts + cell.draws


def defense_factors(rows: pd.DataFrame | None, cells: Sequence[Cell]) -> dict[str, float]:
    """Per defense, its measured seconds per estimated pass over the mean of the measured defenses (1 when
    nothing of it is stored)."""
    per_pass: dict[str, float] = {}
    if rows is not None and len(rows) and "seconds" in rows:
        by_cell = {c.id: c for c in cells}
        spent: dict[str, list[float]] = {}
        for cell_id, g in rows.groupby("cell", sort=False):
            cell = by_cell.get(str(cell_id))
            if cell is None or g["seconds"].sum() <= 0:
                continue
            seconds = float(g["seconds"].mean()) / passes_per_sample(cell)
            spent.setdefault(cell.defense.display, []).append(seconds)
        per_pass = {d: sum(v) / len(v) for d, v in spent.items()}
    if not per_pass:
        return {}
    mean = sum(per_pass.values()) / len(per_pass)
    return {d: v / mean for d, v in per_pass.items()}


def cell_weights(cells: Sequence[Cell], rows: pd.DataFrame | None = None) -> dict[str, float]:
    """Cell id -> the weight of one of its samples in the progress bar."""
    factors = defense_factors(rows, cells)
    return {c.id: passes_per_sample(c) * factors.get(c.defense.display, 1.0) for c in cells}


class LiveCost:
    """Seconds per defense pass, learned from stored rows and from units as they finish; the time left."""

    def __init__(
        self, cells: Sequence[Cell], units: Mapping[str, int], rows: pd.DataFrame | None = None, workers: int = 1
    ) -> None:
        self.passes = {c.id: passes_per_sample(c) for c in cells}
        self.defense = {c.id: c.defense.display for c in cells}
        self.left = {c: int(n) for c, n in units.items() if c in self.passes}
        self.workers = max(int(workers), 1)
        self.spent: dict[str, float] = {}
        self.done: dict[str, float] = {}
        if rows is not None and len(rows) and "seconds" in rows:
            for cell_id, g in rows.groupby("cell", sort=False):
                if str(cell_id) in self.passes and float(g["seconds"].sum()) > 0:
                    self._add(str(cell_id), len(g), float(g["seconds"].sum()))

    def _add(self, cell: str, k: int, seconds: float) -> None:
        d = self.defense[cell]
        self.spent[d] = self.spent.get(d, 0.0) + seconds
        self.done[d] = self.done.get(d, 0.0) + k * self.passes[cell]

    def observe(self, cell: str | None, k: int, seconds: float | None) -> None:
        """``k`` samples of ``cell`` finished, in ``seconds`` of one worker's wall time (None: not measured)."""
        if cell is None or cell not in self.passes:
            return
        self.left[cell] = max(self.left.get(cell, 0) - k, 0)
        if seconds is not None and seconds > 0:
            self._add(cell, k, seconds)

    def rate(self, defense: str) -> float | None:
        """Seconds per pass of ``defense``: measured, else the mean of the measured defenses, else None."""
        rates = {d: self.spent[d] / self.done[d] for d in self.done if self.done[d] > 0}
        if defense in rates:
            return rates[defense]
        return sum(rates.values()) / len(rates) if rates else None

    def seconds_left(self) -> float | None:
        """Estimated wall seconds for the samples left, spread over the workers (None until something is measured)."""
        total = 0.0
        for cell, n in self.left.items():
            r = self.rate(self.defense[cell])
            if r is None:
                return None
            total += n * self.passes[cell] * r
        return total / self.workers
