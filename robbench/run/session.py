"""A run of a suite, end to end: read and check it, guard and lock the results directory, plan the
missing units, write the manifest, execute, report flagged rows, run the checks, finish the manifest.

A run resumes by default: units whose rows are stored are not planned again. Every user-fixable
problem raises a :class:`~robbench.errors.RobbenchError` (exit 2) before anything is written, or, once
the run has started, marks the manifest ``aborted`` and keeps the rows already stored.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from robbench.core.io import atomic_write_text
from robbench.errors import ResultsError, RobbenchError
from robbench.results.manifest import CheckRecord, Manifest
from robbench.results.store import ResultsDir
from robbench.run.determinism import deterministic_mode
from robbench.run.device import resolve_device
from robbench.run.execute import ExecReport, clear_failed, execute
from robbench.run.faults import fault_report
from robbench.run.options import ExecOptions, exec_options
from robbench.run.plan import Plan, plan_units
from robbench.run.record import checkpoint_hashes, start_manifest
from robbench.run.threads import choose_threads
from robbench.run.unit import UnitRunner
from robbench.run.validate import check_suite
from robbench.suite.load import read_suite
from robbench.suite.model import Suite


@dataclass
class RunReport:
    """What a run did: where, how many cells and rows, and what failed or was flagged."""

    out: Path
    cells: int
    rows_written: int
    rows_skipped: int
    seconds: float
    failures: list[str] = field(default_factory=list)
    #: flagged rows that do not fail the run (a defense's NaN/inf logits; robbench.run.faults)
    warnings: list[str] = field(default_factory=list)
    #: units not started because ``--max-minutes`` ran out
    units_left: int = 0


def default_out(suite: Suite) -> Path:
    return Path("results") / suite.name


def prepare(
    suite_path: str | Path, *, out: str | Path | None = None, data_dir: str | None = None, zoo_dir: str | None = None
) -> tuple[Plan, ResultsDir]:
    """Read and check the suite (once), plan it, and name its results directory."""
    suite, text = read_suite(suite_path)
    check_suite(suite, data_dir=data_dir)
    if out is not None and not str(out).strip():
        raise ResultsError("--out is empty", hint="pass a results folder, e.g. --out results/mine")
    base = str(Path(suite_path).resolve().parent)
    plan = Plan(suite, suite_text=text, data_dir=data_dir, zoo_dir=zoo_dir, base_dir=base)
    return plan, ResultsDir(out if out is not None else default_out(suite))


def guard_results_dir(rd: ResultsDir, suite: Suite) -> None:
    """Refuse a file, a foreign folder, or another suite's results as ``--out``."""
    if rd.root.exists() and not rd.root.is_dir():
        raise ResultsError(f"--out {rd.root} exists and is not a directory", hint="choose another --out")
    manifest = rd.read_manifest() if rd.root.is_dir() else None
    # a run killed before its first manifest write leaves only .lock (and perhaps suite.yaml, rows/)
    ours = {".lock", "suite.yaml", "rows", "manifest.json"}
    stale = (".manifest.json.", ".suite.yaml.")  # temp files of a killed atomic write
    if (
        rd.root.is_dir()
        and manifest is None
        and any(p.name not in ours and not p.name.startswith(stale) for p in rd.root.iterdir())
    ):
        raise ResultsError(
            f"--out {rd.root} exists, is not empty and is not a robbench results directory",
            hint="choose another --out; robbench never writes into foreign folders",
        )
    if manifest is not None and manifest.get("suite_name") != suite.name:
        raise ResultsError(
            f"{rd.root} holds results of suite {manifest.get('suite_name')!r}, not {suite.name!r}",
            hint="choose another --out",
        )
    _check_writable(rd.root)


def _check_writable(root: Path) -> None:
    """A read-only --out (or a parent of it) is one clear error, before anything is written."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ResultsError(
            f"--out {root}: {existing} is not writable (read-only mount or permissions)",
            hint="choose a --out on a writable disk",
        )


#: bump when a check's logic changes, so stored checks are recomputed
CHECKS_VERSION = 3


def checks_key(plan: Plan, rd: ResultsDir) -> str:
    """What the checks depend on: the cells, the shards stored for each (a shard's name encodes its samples),
    the checkpoints, the code. Lists files only: no row is read."""
    from robbench import __version__
    from robbench.core.identity import stable_hash

    cells = {c.id for c in plan.cells}
    return stable_hash(
        {
            "cells": sorted(cells),
            "shards": [f"{p.parent.name}/{p.name}" for p in rd.shard_paths() if p.parent.name in cells],
            "checkpoints": checkpoint_hashes(plan.suite, plan.zoo_dir),
            "robbench": __version__,
            "checks": CHECKS_VERSION,
        }
    )


def _reusable_checks(rd: ResultsDir, key: str) -> list[CheckRecord] | None:
    """The stored checks when they were computed from exactly this key (a warm rerun), else None."""
    try:
        raw = rd.read_manifest()
        prev = Manifest.parse(raw, str(rd.manifest_path)) if raw is not None else None
    except RobbenchError:
        return None
    return prev.checks if prev is not None and prev.checks_key == key else None


def _previous_checks(rd: ResultsDir) -> list[CheckRecord] | None:
    """The checks of the manifest already in ``rd`` (None when there are none, or it is unreadable)."""
    try:
        raw = rd.read_manifest()
        return Manifest.parse(raw, str(rd.manifest_path)).checks if raw is not None else None
    except RobbenchError:
        return None


def _finish(
    plan: Plan,
    rd: ResultsDir,
    runner: UnitRunner,
    manifest: Manifest,
    rep: ExecReport,
    *,
    checks: bool,
    compute_checks: bool,
    kept_checks: list[CheckRecord] | None,
    start: float,
) -> tuple[list[str], list[str]]:
    """Report flagged rows, run (or keep) the checks, and write the finished manifest."""
    faults, warns = fault_report(
        rd.read_rows(repair=True, cells={c.id for c in plan.cells}), {c.id: c.label for c in plan.cells}
    )
    failures = list(dict.fromkeys(rep.failures + faults))
    manifest.warnings = warns
    manifest.checkpoints = checkpoint_hashes(plan.suite, plan.zoo_dir)
    manifest.code_versions = rd.code_versions({c.id for c in plan.cells})
    if checks and not rep.units_left:
        from robbench.run.checks.suite_checks import run_checks

        records = run_checks(plan, runner, compute=compute_checks, computed=rep.checks)
        manifest.checks = [CheckRecord.model_validate(r) for r in records]
    else:  # reused, --no-checks, or stopped at the time limit: earlier checks only when no new row was stored
        manifest.checks = kept_checks if rep.written == 0 else None
    manifest.checks_key = checks_key(plan, rd) if manifest.checks is not None else None
    manifest.status = "failed" if failures else "stopped" if rep.units_left else "complete"
    manifest.failures = failures
    manifest.finished = datetime.now(UTC).isoformat()
    manifest.seconds = round(time.perf_counter() - start, 2)
    rd.write_manifest(manifest.dump())
    return failures, warns


def _record_abort(rd: ResultsDir, manifest: Manifest, exc: RobbenchError, start: float) -> None:
    """Best effort: mark the manifest aborted (the disk may be full; the error itself is what matters)."""
    manifest.status, manifest.failures = "aborted", [exc.message]
    manifest.finished = datetime.now(UTC).isoformat()
    manifest.seconds = round(time.perf_counter() - start, 2)
    with contextlib.suppress(RobbenchError, OSError):
        rd.write_manifest(manifest.dump())


@dataclass(frozen=True)
class _Settings:
    """How this run executes (recorded in the manifest)."""

    device: torch.device
    requested: str
    batch_size: int
    shard: int
    threads: int | None
    deterministic: bool
    opts: ExecOptions
    threads_choice: str = ""


def _begin(plan: Plan, rd: ResultsDir, st: _Settings) -> Manifest:
    """Write the run's first manifest (status running) and the suite text; return the manifest."""
    manifest = start_manifest(
        plan,
        rd.root,
        device=st.device,
        device_requested=st.requested,
        batch_size=st.batch_size,
        deterministic=st.deterministic,
        shard_size=st.shard,
        threads=st.threads,
    )
    manifest.execution = {**st.opts.model_dump(), "device_requested": st.requested}
    if st.threads_choice:
        manifest.execution["threads_choice"] = st.threads_choice
    rd.write_manifest(manifest.dump())
    if plan.suite_text:
        atomic_write_text(rd.root / "suite.yaml", plan.suite_text)
    return manifest


def _run_locked(
    plan: Plan, rd: ResultsDir, st: _Settings, *, fresh: bool, quiet: bool, checks: bool, start: float
) -> tuple[int, ExecReport, list[str], list[str]]:
    """The run under the results directory's lock: (rows planned, report, failures, warnings)."""
    opts = st.opts
    kept = None if checks else _previous_checks(rd)
    if fresh and rd.rows_dir.exists():
        shutil.rmtree(rd.rows_dir)
    clear_failed(rd)  # units that failed last time run again
    stale = rd.retire_stale()
    if stale:
        note = (
            f"set aside {stale} stored rows written by another results version (now in {rd.rows_dir / '.stale'}); "
            "they are recomputed, never mixed with current rows"
        )
        plan.notes.append(note)
        print(f"note: {note}", file=sys.stderr)
    units = plan_units(plan, rd.done_keys(), st.shard)
    reuse = _reusable_checks(rd, checks_key(plan, rd)) if checks and not units else None
    manifest = _begin(plan, rd, st)
    accel = {"compile": opts.compile, "channels_last": opts.channels_last} if opts.compile or opts.channels_last else {}
    runner = UnitRunner(plan, rd, st.device, st.batch_size, accel)
    try:
        keys = [u.key for u in units]
        rep = execute(runner, keys, opts, device=st.requested, threads=st.threads, quiet=quiet, checks=checks)
    except RobbenchError as exc:  # a user-fixable problem (full disk, cluster, ...): exit 2, rows kept
        _record_abort(rd, manifest, exc, start)
        raise
    manifest.execution.update(rep.describe())
    compute = opts.executor == "local"
    failures, warns = _finish(
        plan,
        rd,
        runner,
        manifest,
        rep,
        checks=checks and reuse is None,
        compute_checks=compute,
        kept_checks=kept if reuse is None else reuse,
        start=start,
    )
    return sum(len(u.indices) for u in units), rep, failures, warns


def _threads(requested: int | None, opts: ExecOptions, quiet: bool) -> tuple[int | None, str]:
    """Threads per worker (see :mod:`robbench.run.threads`): set here for this process, said unless quiet.

    Cluster jobs keep their own setting (``--cpus-per-job``) unless ``--threads`` is given.
    """
    if opts.executor != "local":
        return requested, ""
    choice = choose_threads(requested, opts.workers)
    torch.set_num_threads(choice.threads if choice.explicit else choice.threads * choice.workers)
    if not quiet:
        print(choice.describe(), file=sys.stderr)
    return choice.threads, choice.describe()


def run_suite(
    suite_path: str | Path,
    *,
    out: str | Path | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    fresh: bool = False,
    data_dir: str | None = None,
    zoo_dir: str | None = None,
    shard_size: int | None = None,
    quiet: bool = False,
    threads: int | None = None,
    deterministic: bool = False,
    execution: ExecOptions | dict[str, Any] | None = None,
    checks: bool = True,
    **exec_kwargs: Any,
) -> RunReport:
    """Run a suite; resumes by default (finished rows are skipped). Returns a :class:`RunReport`.

    ``deterministic`` turns on torch's deterministic algorithms for this run (recorded in the
    manifest; see :mod:`robbench.run.determinism`). ``execution`` (an :class:`ExecOptions` or a dict)
    and ``exec_kwargs`` (its fields: ``executor``, ``workers``, ``shards``, ``cluster``, Slurm
    options, ``max_retries``, ``compile``, ``channels_last``) choose where the units run.
    ``checks`` runs :mod:`robbench.run.checks` after the units and records them in the manifest (the
    compute checks only with the local executor; with others, the row checks alone).
    """
    opts = exec_options(execution, **exec_kwargs)
    # the submitit coordinator may sit on a login node without the jobs' device: jobs resolve it
    dev = resolve_device(device) if opts.executor == "local" else torch.device("cpu")
    plan, rd = prepare(suite_path, out=out, data_dir=data_dir, zoo_dir=zoo_dir)
    guard_results_dir(rd, plan.suite)
    chosen, why = _threads(threads, opts, quiet)
    bs = batch_size or plan.suite.evaluation.batch_size
    st = _Settings(dev, device, bs, shard_size or max(bs, 64), chosen, deterministic, opts, why)
    start = time.perf_counter()
    with deterministic_mode(deterministic), rd.lock():
        todo, rep, failures, warns = _run_locked(plan, rd, st, fresh=fresh, quiet=quiet, checks=checks, start=start)
    return RunReport(
        rd.root,
        len(plan.cells),
        rep.written,
        len(plan.cells) * len(plan.sample_positions) - todo,
        time.perf_counter() - start,
        failures,
        warns,
        rep.units_left,
    )
