"""The results directory: parquet shards written atomically, the manifest, the lock, and resume.

Layout of a results directory::

    manifest.json        resolved suite, cells, versions, git SHA, device, times (atomic rewrite)
    suite.yaml           the suite text as given
    rows/CELL/*.parquet  shards of rows; each written to a temp file, fsynced, renamed
    .lock                held (flock) by the run writing here

A shard is either whole or absent. A shard that cannot be read (torn by an outside copy, a full
disk) is moved to ``rows/.corrupt/`` and its rows are recomputed on resume; the ``.*.tmp`` files of
a writer killed mid-write are deleted by the next run (under the lock). Rows are keyed by
``(cell, sample_id)``; a key present twice is kept once (the earliest shard by name, current results
version first). Each shard carries in its parquet metadata the code that wrote it (robbench version,
results version, git SHA); a resume counts only rows of the current results version as done.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from robbench import RESULTS_VERSION
from robbench.core.io import atomic_write_bytes
from robbench.errors import ResultsError
from robbench.results.schema import COLUMNS, SCHEMA

#: the parquet metadata key of a shard's code stamp
CODE_KEY = "robbench_code"


def _stamp(meta: dict[bytes, bytes] | None) -> dict[str, Any]:
    """The code stamp in a shard's parquet metadata; a shard from before stamps existed is results version 1."""
    raw = (meta or {}).get(CODE_KEY.encode())
    if raw is None:
        return {"results_version": 1}
    stamp: dict[str, Any] = json.loads(raw)
    return stamp


class ResultsDir:
    """A results directory: rows, manifest, lock."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.rows_dir = self.root / "rows"
        self.manifest_path = self.root / "manifest.json"

    # ---- manifest -------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.is_file():
            return None
        try:
            data: dict[str, Any] = json.loads(self.manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ResultsError(
                f"{self.manifest_path} is corrupt: {exc}",
                hint=f"delete {self.manifest_path} and rerun the suite: stored rows are kept and "
                "reused, the manifest is rewritten",
            ) from None
        return data

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_bytes(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True, default=str).encode())

    # ---- lock -----------------------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock for a run; a second run into the same directory is refused."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fh = open(self.root / ".lock", "a+")  # noqa: SIM115 - held open (locked) for the whole run
        except OSError as exc:
            raise ResultsError(
                f"cannot write the results directory {self.root}: {exc.strerror}",
                hint="choose a --out on a writable disk",
            ) from None
        try:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                raise ResultsError(
                    f"results directory {self.root} is in use by {holder}",
                    hint="wait for that run to finish, or pass a different --out",
                ) from None
            try:  # who holds it, for the refusal message of a second run; informational only
                fh.seek(0)
                fh.truncate()
                fh.write(f"pid {os.getpid()} on {socket.gethostname()}")
                fh.flush()
            except OSError:  # e.g. a full disk: the lock itself (flock) is held all the same
                pass
            self.remove_stale_temp_files()
            yield
        finally:
            fh.close()

    def remove_stale_temp_files(self) -> int:
        """Delete ``.*.tmp`` files left by a killed writer (call only while holding the lock)."""
        n = 0
        for folder in (self.root, *(sorted(self.rows_dir.glob("*")) if self.rows_dir.is_dir() else [])):
            if not folder.is_dir():
                continue
            for tmp in folder.glob(".*.tmp"):
                try:
                    tmp.unlink()
                    n += 1
                except OSError:
                    pass
        return n

    # ---- shards ---------------------------------------------------------------------------
    def write_shard(self, cell: str, name: str, rows: list[dict[str, Any]], code: dict[str, Any] | None = None) -> Path:
        """Write one shard atomically, stamped with the ``code`` that produced its rows (robbench version,
        results version, git SHA; :func:`robbench.run.record.code_stamp`)."""
        stamp = {"results_version": RESULTS_VERSION, **(code or {})}
        schema = SCHEMA.with_metadata({CODE_KEY: json.dumps(stamp, sort_keys=True)})
        table = pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in rows], schema=schema)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        path = self.rows_dir / cell / f"{name}.parquet"
        atomic_write_bytes(path, buf.getvalue())
        return path

    def shard_paths(self) -> list[Path]:
        if not self.rows_dir.is_dir():
            return []
        # hidden names are temp files and rows/.corrupt/ (quarantined shards): never rows
        return sorted(
            p
            for p in self.rows_dir.glob("*/*.parquet")
            if not p.name.startswith(".") and not p.parent.name.startswith(".")
        )

    def quarantine(self, path: Path) -> None:
        """Move an unreadable shard to ``rows/.corrupt/`` (kept as evidence, never overwritten)."""
        dest = self.rows_dir / ".corrupt" / f"{path.parent.name}--{path.name}"
        k = 1
        while dest.exists():
            dest = dest.with_name(f"{path.parent.name}--{path.stem}.{k}{path.suffix}")
            k += 1
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), dest)

    def shard_code(self, path: Path) -> dict[str, Any]:
        """The code stamp of a shard; a shard written before stamps existed is results version 1."""
        return _stamp(pq.read_schema(path).metadata)

    def retire_stale(self) -> int:
        """Move shards written by another results version to ``rows/.stale/`` (kept, never read as rows);
        returns how many rows they held. Call only while holding the lock."""
        n = 0
        for path in self.shard_paths():
            try:
                if self.shard_code(path).get("results_version") == RESULTS_VERSION:
                    continue
                rows = pq.read_metadata(path).num_rows
            except Exception:  # unreadable: quarantined by the resume
                continue
            dest = self.rows_dir / ".stale" / path.parent.name / path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), dest)
            n += rows
        return n

    def code_versions(self, cells: set[str] | None = None) -> list[dict[str, Any]]:
        """Every distinct code stamp of the shards (of ``cells``): the code the rows came from."""
        seen: dict[str, dict[str, Any]] = {}
        for path in self.shard_paths():
            if cells is None or path.parent.name in cells:
                with contextlib.suppress(Exception):  # an unreadable shard is quarantined by the run
                    stamp = self.shard_code(path)
                    seen.setdefault(json.dumps(stamp, sort_keys=True), stamp)
        return [seen[k] for k in sorted(seen)]

    def read_rows(
        self, *, repair: bool = False, cells: set[str] | None = None, current_only: bool = False
    ) -> pd.DataFrame:
        """All rows (deduplicated by key; rows of the current results version win over older ones).
        Unreadable shards raise, or are quarantined with ``repair``; ``current_only`` drops the rows of
        shards written by another results version (a resume never reuses them)."""
        frames: list[pd.DataFrame] = []
        old: list[pd.DataFrame] = []
        for path in self.shard_paths():
            if cells is not None and path.parent.name not in cells:
                continue
            try:
                table = pq.read_table(path)  # one read: the rows and the code stamp in its metadata
                current = _stamp(table.schema.metadata).get("results_version") == RESULTS_VERSION
                if current or not current_only:
                    frame = pq.read_table(path, schema=SCHEMA) if table.schema.names != SCHEMA.names else table
                    (frames if current else old).append(frame.to_pandas())
            except Exception as exc:
                if repair:
                    self.quarantine(path)
                    continue
                raise ResultsError(
                    f"shard {path} is corrupt ({type(exc).__name__})",
                    hint="run `robbench run SUITE` again: it quarantines torn shards and recomputes their rows",
                ) from None
        frames += old
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
        df = pd.concat(frames, ignore_index=True)
        out: pd.DataFrame = df.drop_duplicates(subset=["cell", "sample_id"], keep="first").reset_index(drop=True)
        return out

    def done_keys(self) -> dict[str, set[str]]:
        """cell -> sample ids already stored (after quarantining torn shards)."""
        df = self.read_rows(repair=True, current_only=True)
        out: dict[str, set[str]] = {}
        for cell, sid in zip(df["cell"], df["sample_id"], strict=True):
            out.setdefault(cell, set()).add(sid)
        return out
