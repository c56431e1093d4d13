"""User-facing errors: each carries one clear message naming the problem and the fix.

The CLI turns every :class:`RobbenchError` into that message on stderr and exit code 2.
Anything else escaping is a bug in robbench and keeps its traceback.
"""

from __future__ import annotations


class RobbenchError(Exception):
    """A problem the user can fix (bad suite, unknown name, missing data, ...)."""

    exit_code: int = 2
    #: True when no other unit of the run can succeed either (e.g. a full disk): executors stop
    #: the run at once instead of recording the unit as failed and going on
    fatal: bool = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  fix: {hint}")


class SuiteError(RobbenchError):
    """The suite YAML is malformed or names something that does not exist."""


class RegistryError(RobbenchError):
    """An unknown component name, or two packages claiming one name."""


class DataError(RobbenchError):
    """A data set is missing or unreadable."""

    fatal = True  # shared by every unit of a run: stop at once with this message (exit 2)


class CheckpointError(RobbenchError):
    """A checkpoint is missing, fails its hash, or does not match its architecture."""

    fatal = True  # shared by every unit of a run: stop at once with this message (exit 2)


class ResultsError(RobbenchError):
    """A results directory is empty, corrupt, locked, or from another suite."""


class DiskFullError(ResultsError):
    """The disk holding the results is full (no space, quota, or file-size limit)."""

    fatal = True


class DeviceError(RobbenchError):
    """A device was requested that this machine does not have."""

    fatal = True  # shared by every unit of a run: stop at once with this message (exit 2)
