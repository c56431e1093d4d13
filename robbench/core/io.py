"""Atomic file writes: a temp file in the same folder, fsync, then rename over the target.

A reader (or a run resumed after a crash) sees either the old file or the whole new one, never a
half-written one: the data goes to ``.NAME.XXXX.tmp`` beside the target, is fsynced, and is then
renamed over the target (``os.replace`` is atomic within one file system); the folder is fsynced
so the rename survives a power cut. A process killed before the rename leaves only a stale
``.*.tmp`` file, which readers ignore (:meth:`robbench.results.ResultsDir.remove_stale_temp_files`
deletes them under the run lock). A full disk (``ENOSPC``, a quota, a file-size limit) becomes one
:class:`~robbench.errors.DiskFullError` naming the folder, and the temp file is removed.

Test hook (used by ``tests/test_kill_resume.py`` only): with ``ROBBENCH_TEST_SLOW_WRITE=SECONDS``
(optionally ``SECONDS:GLOB``) every atomic write whose target file name matches ``GLOB`` (default
``*``) sleeps that long after the data is fsynced and before the rename, so a test can SIGKILL a
real run inside the write window. Unset, it costs one environment lookup.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import tempfile
import time
from pathlib import Path

from robbench.errors import DiskFullError

#: errors that mean "the disk (or this process's share of it) is full"
DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


_TEST_SLOW_WRITE = "ROBBENCH_TEST_SLOW_WRITE"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _test_pause(path: Path) -> None:
    """The documented kill-test hook: sleep between fsync and rename when asked to."""
    spec = os.environ.get(_TEST_SLOW_WRITE)
    if not spec:
        return
    seconds, _, pattern = spec.partition(":")
    if fnmatch.fnmatch(path.name, pattern or "*"):
        time.sleep(float(seconds))


def disk_full_error(exc: OSError, where: Path) -> DiskFullError:
    """The one clear message for a full disk (ENOSPC / EDQUOT / EFBIG)."""
    what = {
        errno.ENOSPC: "no space left",
        errno.EDQUOT: "disk quota exceeded",
        errno.EFBIG: "file size limit exceeded",
    }.get(exc.errno or 0, "write failed")
    return DiskFullError(
        f"{what} on the disk holding {where} ({os.strerror(exc.errno or 0)})",
        hint="free disk space (or raise the quota / `ulimit -f`), or pass --out on another disk; "
        "finished rows are kept and the run resumes where it stopped",
    )


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never half."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        # mkstemp creates 0600 files; give the result the permissions a plain open() would
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _test_pause(path)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise disk_full_error(exc, path.parent) from None
        raise
    finally:
        if tmp is not None:  # failed or interrupted (KeyboardInterrupt included) before the rename
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))
