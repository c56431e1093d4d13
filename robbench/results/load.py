"""The checked loader every reader of a results directory uses (tables, compare, plot).

An absent, empty, corrupt or foreign directory is one clear :class:`~robbench.errors.ResultsError`
(exit 2); rows of cells that are not in the manifest are ignored and said so in ``notes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from robbench.errors import ResultsError
from robbench.results.manifest import Manifest
from robbench.results.store import ResultsDir


@dataclass
class Loaded:
    """A checked results directory: manifest, the rows of its cells, and what was ignored."""

    path: Path
    manifest: Manifest
    rows: pd.DataFrame
    ignored_rows: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def suite_name(self) -> str:
        return self.manifest.suite_name


def _notes(manifest: Manifest, df: pd.DataFrame, ignored: int) -> list[str]:
    notes = []
    if ignored:
        notes.append(
            f"{ignored} stored rows belong to cells that are not in this suite's manifest (another suite "
            "version wrote here); they are ignored"
        )
    if manifest.status not in (None, "complete"):
        notes.append(f"the run is {manifest.status}: the table shows the rows stored so far")
    if manifest.n_samples is not None:
        cells = manifest.cell_ids
        partial = int((df.groupby("cell").size() < manifest.n_samples).sum()) + len(cells - set(df["cell"]))
        if partial:
            notes.append(f"{partial} of {len(cells)} cells have fewer than the suite's {manifest.n_samples} samples")
    if manifest.checks is None:
        notes.append(
            "the false-robustness checks were not run for these rows (--no-checks, or the run stopped before them): "
            "rerun the suite without --no-checks"
        )
    return notes


def load_results(path: str | Path) -> Loaded:
    """Open a results directory for reading (table, compare, plot); clear errors otherwise."""
    rd = ResultsDir(path)
    if not rd.root.is_dir():
        raise ResultsError(
            f"results directory {rd.root} does not exist", hint="run `robbench run SUITE` first, or check the path"
        )
    raw = rd.read_manifest()
    if raw is None:
        what = "is empty" if not any(rd.root.iterdir()) else "has no manifest.json"
        raise ResultsError(
            f"{rd.root} {what}: it is not a robbench results directory",
            hint="point at the folder `robbench run` wrote, e.g. results/quickstart",
        )
    manifest = Manifest.parse(raw, f"{rd.root}/manifest.json")
    df = rd.read_rows()
    ours = df["cell"].isin(manifest.cell_ids)
    ignored = int((~ours).sum())
    df = df[ours].reset_index(drop=True)
    if df.empty:
        more = f" ({ignored} rows belong to cells of another suite)" if ignored else ""
        raise ResultsError(
            f"{rd.root} holds no rows for the cells of suite {manifest.suite_name!r}{more}",
            hint="run the suite first: robbench run SUITE --out " + str(rd.root),
        )
    return Loaded(rd.root, manifest, df, ignored, _notes(manifest, df, ignored))
