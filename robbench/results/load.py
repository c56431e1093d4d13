"""From rows to the tidy summary: accuracy per cell with Wilson CIs, scoring of stochastic
defenses, worst case over attacks, and the suite's reported numbers beside the measured ones.

Also the checked loader every reader of a results directory uses (:func:`load_results`): an
empty, corrupt or foreign directory is one clear :class:`~robbench.errors.ResultsError` (exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robbench.errors import ResultsError


# ---- loading -------------------------------------------------------------------------------------
@dataclass
class Loaded:
    """A checked results directory: manifest, the rows of its cells, and what was ignored."""

    path: Path
    manifest: dict[str, Any]
    rows: pd.DataFrame
    ignored_rows: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def suite_name(self) -> str:
        return str(self.manifest.get("suite_name", ""))


def _check_manifest(path: Path, manifest: Any) -> dict[str, Any]:
    hint = "the manifest was edited or damaged; re-run the suite into a fresh --out"
    if not isinstance(manifest, dict):
        raise ResultsError(f"{path}/manifest.json is corrupt: not a JSON object", hint=hint)
    cells = manifest.get("cells")
    if not isinstance(cells, list) or not all(isinstance(c, dict) and isinstance(c.get("id"), str) for c in cells):
        raise ResultsError(f"{path}/manifest.json is corrupt: no list of cells with ids", hint=hint)
    if not isinstance(manifest.get("suite"), dict) or not isinstance(manifest.get("suite_name"), str):
        raise ResultsError(f"{path}/manifest.json is corrupt: no suite", hint=hint)
    return manifest


def load_results(path: str | Path) -> Loaded:
    """Open a results directory for reading (table, compare, plot); clear errors otherwise."""
    from robbench.results.store import ResultsDir

    rd = ResultsDir(path)
    if not rd.root.is_dir():
        raise ResultsError(
            f"results directory {rd.root} does not exist", hint="run `robbench run SUITE` first, or check the path"
        )
    manifest = rd.read_manifest()
    if manifest is None:
        what = "is empty" if not any(rd.root.iterdir()) else "has no manifest.json"
        raise ResultsError(
            f"{rd.root} {what}: it is not a robbench results directory",
            hint="point at the folder `robbench run` wrote, e.g. results/quickstart",
        )
    manifest = _check_manifest(rd.root, manifest)
    df = rd.read_rows()
    cells = {c["id"] for c in manifest["cells"]}
    ours = df["cell"].isin(cells)
    ignored = int((~ours).sum())
    df = df[ours].reset_index(drop=True)
    if df.empty:
        more = f" ({ignored} rows belong to cells of another suite)" if ignored else ""
        raise ResultsError(
            f"{rd.root} holds no rows for the cells of suite {manifest['suite_name']!r}{more}",
            hint="run the suite first: robbench run SUITE --out " + str(rd.root),
        )
    notes = []
    if ignored:
        notes.append(
            f"{ignored} stored rows belong to cells that are not in this suite's manifest (another suite "
            "version wrote here); they are ignored"
        )
    status = manifest.get("status")
    n_expected = manifest.get("n_samples")
    if status not in (None, "complete"):
        notes.append(f"the run is {status}: the table shows the rows stored so far")
    if isinstance(n_expected, int):
        partial = int((df.groupby("cell").size() < n_expected).sum()) + len(cells - set(df["cell"]))
        if partial:
            notes.append(f"{partial} of {len(cells)} cells have fewer than the suite's {n_expected} samples")
    return Loaded(rd.root, manifest, df, ignored, notes)
