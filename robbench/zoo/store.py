"""The checkpoint cache: files with a JSON manifest each, sha256-verified, loaded weights-only."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from robbench.core.io import atomic_write_bytes, atomic_write_text
from robbench.errors import CheckpointError


def default_zoo_dir() -> Path:
    """``$ROBBENCH_ZOO_DIR``, else the user cache dir (e.g. ``~/.cache/robbench/zoo``)."""
    env = os.environ.get("ROBBENCH_ZOO_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("robbench")) / "zoo"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_sha256(path: Path, sha256: str) -> None:
    """Raise :class:`CheckpointError` unless the file's sha256 is ``sha256``."""
    actual = sha256_file(path)
    if actual != sha256.lower():
        raise CheckpointError(
            f"checkpoint {path} fails its hash: sha256 {actual[:16]}... expected {sha256[:16]}...",
            hint="the file is corrupt or not the one named; delete it (zoo: `robbench zoo verify`) and re-create it",
        )


def load_state_dict(path: Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Verify ``path`` against ``sha256`` (when given) and load it weights-only (no code runs)."""
    obj = load_weights_only(path, sha256)
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, not a state dict (name -> tensor)",
            hint="save the weights with torch.save(model.state_dict(), path)",
        )
    return obj


def load_weights_only(path: Path, sha256: str | None = None) -> Any:
    """Verify ``path`` against ``sha256`` (when given) and unpickle it weights-only: tensors and plain
    containers (lists, dicts, numbers, strings) only, so no code in the file runs. Any layout."""
    check_file(path, sha256)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path} is not a weights-only checkpoint (refused without running anything): {_unpickle_reason(exc)}",
            hint="robbench loads only tensors and plain containers; re-save the file with torch.save(model.state_dict())",
        ) from None
    return obj


def check_file(path: Path, sha256: str | None = None) -> None:
    """A checkpoint file exists, is not empty, matches ``sha256`` (when given) and starts as torch's zip or a pickle."""
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a file", hint="give the path of the checkpoint file")
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} not found", hint="check the path, or train it with `robbench zoo train`"
        )
    if path.stat().st_size == 0:
        raise CheckpointError(
            f"checkpoint {path} is empty (0 bytes): an interrupted download or copy",
            hint="fetch or copy the file again",
        )
    if sha256 is not None:
        verify_sha256(path, sha256)
    with path.open("rb") as fh:
        head = fh.read(4)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch's zip format, or a pickle
        raise CheckpointError(
            f"{path} is not a torch checkpoint (neither torch's zip format nor a pickle; it starts with {head!r})",
            hint="give the checkpoint file itself (a .pt/.pth written by torch.save), not an archive or a web page",
        )


def _unpickle_reason(exc: BaseException) -> str:
    """The informative line of torch's weights-only refusal (which global or opcode it met)."""
    if isinstance(exc, EOFError) or "EOF" in type(exc).__name__:
        return "the file ends early (truncated)"
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for key in ("GLOBAL", "Unsupported", "WeightsUnpickler error:"):
        for ln in lines:
            if key in ln and not ln.startswith("Weights only load failed"):
                return ln[:300]
    return (lines[0] if lines else type(exc).__name__)[:300]


class ZooStore:
    """A folder of ``NAME-HASH.pt`` checkpoints with ``NAME-HASH.json`` manifests."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_zoo_dir()

    def paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.pt", self.root / f"{key}.json"

    def has(self, key: str) -> bool:
        ckpt, man = self.paths(key)
        return ckpt.is_file() and man.is_file()

    @contextmanager
    def _locked(self, shared: bool) -> Iterator[None]:
        """Hold the folder's lock: writers replace a checkpoint and its manifest as one pair, so a
        reader (or a second process training the same recipe) never sees one without the other."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fh = open(self.root / ".zoo.lock", "a+")  # noqa: SIM115 - closed below
        except OSError:  # a read-only cache: nobody writes there, nothing to lock
            yield
            return
        with fh:
            try:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            except (ImportError, OSError):  # no flock (e.g. Windows, some network disks): atomic files only
                pass
            yield

    def save(self, key: str, state: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
        import io

        ckpt, man = self.paths(key)
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
        manifest = dict(manifest, sha256=hashlib.sha256(data).hexdigest(), file=ckpt.name)
        with self._locked(shared=False):
            atomic_write_bytes(ckpt, data)
            atomic_write_text(man, json.dumps(manifest, indent=2, sort_keys=True))
        return manifest

    def manifest(self, key: str) -> dict[str, Any]:
        _, man = self.paths(key)
        try:
            data: dict[str, Any] = json.loads(man.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"zoo manifest {man} is unreadable: {exc}", hint=f"delete {man} and retrain"
            ) from None
        return data

    def load(self, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(state, manifest) with the checkpoint's sha256 verified against its manifest."""
        with self._locked(shared=True):
            manifest = self.manifest(key)
            ckpt, man = self.paths(key)
            if not isinstance(manifest.get("sha256"), str):  # never load a zoo file unverified
                raise CheckpointError(
                    f"zoo manifest {man} records no sha256 for {ckpt.name}",
                    hint=f"delete {ckpt} and {man} and retrain (`robbench zoo train`)",
                )
            state = load_state_dict(ckpt, manifest["sha256"])
        return state, manifest

    def entries(self) -> list[dict[str, Any]]:
        out = []
        if self.root.is_dir():
            for man in sorted(self.root.glob("*.json")):
                try:
                    out.append(dict(json.loads(man.read_text()), key=man.stem))
                except (OSError, json.JSONDecodeError):
                    out.append({"key": man.stem, "error": "unreadable manifest"})
        return out

    def verify(self) -> list[tuple[str, bool, str]]:
        """(key, ok, detail) for every cached checkpoint."""
        rows = []
        for entry in self.entries():
            key = entry["key"]
            ckpt, _ = self.paths(key)
            if "error" in entry:
                rows.append((key, False, entry["error"]))
            elif not ckpt.is_file():
                rows.append((key, False, "checkpoint file missing"))
            else:
                actual = sha256_file(ckpt)
                ok = actual == entry.get("sha256")
                rows.append(
                    (key, ok, "ok" if ok else f"sha256 mismatch: {actual[:12]} != {str(entry.get('sha256'))[:12]}")
                )
        return rows
