"""Stored example images (``evaluation.save_examples: N``): ``examples/CELL/INDEX.npz`` in a results folder.

Each file holds one sample of one cell: the clean image, the adversarial image the judge scored (the clean
image where the attack's output left the ball), the defense's purification of it under the judge's first
draw, and the label and the two predictions the row stores. Files are written atomically, beside the rows,
never read by a resume and never part of a row or an identity: deleting ``examples/`` loses only the gallery.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robbench.core.io import atomic_write_bytes

FOLDER = "examples"


@dataclass(frozen=True)
class Example:
    """One stored example; images float32 CHW in [0, 1] (purified: None for a defense without a purifier)."""

    sample_id: str
    index: int
    label: int
    clean_pred: int
    adv_pred: int
    clean: np.ndarray
    adv: np.ndarray
    purified: np.ndarray | None


def write_example(root: str | Path, cell: str, ex: Example) -> Path:
    """Store ``ex`` of ``cell`` under ``root/examples/CELL/INDEX.npz`` (atomic)."""
    buf = io.BytesIO()
    arrays = {"clean": ex.clean.astype(np.float32), "adv": ex.adv.astype(np.float32)}
    if ex.purified is not None:
        arrays["purified"] = ex.purified.astype(np.float32)
    meta = np.array([ex.index, ex.label, ex.clean_pred, ex.adv_pred], dtype=np.int64)
    np.savez_compressed(buf, meta=meta, sample_id=np.array(ex.sample_id), **arrays)  # type: ignore[arg-type]
    path = Path(root) / FOLDER / cell / f"{ex.index:08d}.npz"
    atomic_write_bytes(path, buf.getvalue())
    return path


def read_examples(root: str | Path) -> dict[str, list[Example]]:
    """Cell id -> its stored examples by sample index; unreadable files are skipped (the gallery is optional)."""
    out: dict[str, list[Example]] = {}
    base = Path(root) / FOLDER
    if not base.is_dir():
        return out
    for cell_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(cell_dir.glob("[0-9]*.npz")):
            try:
                with np.load(f, allow_pickle=False) as z:
                    index, label, clean_pred, adv_pred = (int(v) for v in z["meta"])
                    purified = z["purified"] if "purified" in z.files else None
                    ex = Example(
                        str(z["sample_id"]), index, label, clean_pred, adv_pred, z["clean"], z["adv"], purified
                    )
            except (OSError, ValueError, KeyError):
                continue
            out.setdefault(cell_dir.name, []).append(ex)
    return out
