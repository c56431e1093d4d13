"""The runner: plan cells, skip finished rows, batch, attack, check containment, judge, write shards.

A *cell* is one (defense, attack, threat); the clean attack is threat-free. A *unit* is a cell
and a list of samples; units are independent and carry their own seeds (derived from the suite
seed, the cell and each sample id), so any split of the work gives the same rows. The runner,
never the attack, judges success with the real defense, and asserts on every sample that the
adversarial image lies in the threat ball and in [0, 1].
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from robbench.core.io import atomic_write_text
from robbench.errors import ResultsError, RobbenchError
from robbench.results.store import ResultsDir
from robbench.run.determinism import deterministic_mode
from robbench.run.device import resolve_device
from robbench.run.faults import fault_report
from robbench.run.plan import Plan, plan_units
from robbench.run.record import checkpoint_hashes, run_record
from robbench.run.unit import Executor
from robbench.suite.load import read_suite
from robbench.suite.model import Suite


@dataclass
class RunReport:
    out: Path
    cells: int
    rows_written: int
    rows_skipped: int
    seconds: float
    failures: list[str] = field(default_factory=list)
    #: flagged rows that do not fail the run (a defense's NaN/inf logits; robbench.run.faults)
    warnings: list[str] = field(default_factory=list)


def default_out(suite: Suite) -> Path:
    return Path("results") / suite.name


def prepare(
    suite_path: str | Path, *, out: str | Path | None = None, data_dir: str | None = None, zoo_dir: str | None = None
) -> tuple[Plan, ResultsDir]:
    suite, text = read_suite(suite_path)
    plan = Plan(suite, suite_text=text, data_dir=data_dir, zoo_dir=zoo_dir)
    return plan, ResultsDir(out or default_out(suite))


def _guard_results_dir(rd: ResultsDir, suite: Suite, fresh: bool) -> None:
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
    execution: Any = None,
    checks: bool = True,
    **exec_kwargs: Any,
) -> RunReport:
    """Run a suite; resumes by default (finished rows are skipped). Returns a :class:`RunReport`.

    ``deterministic`` turns on torch's deterministic algorithms for this run (recorded in the
    manifest; see :mod:`robbench.run.record`).

    ``execution`` (an :class:`robbench.run.options.ExecOptions` or a dict) and ``exec_kwargs`` (its
    fields: ``executor``, ``workers``, ``shards``, ``cluster``, Slurm options, ``max_retries``,
    ``compile``, ``channels_last``) choose where the units run; see :mod:`robbench.run.execute`.

    ``checks`` runs :mod:`robbench.run.checks` after the units and records them in ``manifest["checks"]``
    (the compute checks only with the local executor; with others, the row checks alone).
    """
    from robbench.run.execute import clear_failed, execute
    from robbench.run.options import exec_options

    opts = exec_options(execution, **exec_kwargs)
    # the submitit coordinator may sit on a login node without the jobs' device: jobs resolve it
    dev = resolve_device(device) if opts.executor == "local" else torch.device("cpu")
    plan, rd = prepare(suite_path, out=out, data_dir=data_dir, zoo_dir=zoo_dir)
    _guard_results_dir(rd, plan.suite, fresh)
    if threads:
        torch.set_num_threads(threads)
    bs = batch_size or plan.suite.evaluation.batch_size
    shard = shard_size or max(bs, 64)
    start = time.perf_counter()
    with deterministic_mode(deterministic), rd.lock():
        if fresh and rd.rows_dir.exists():
            import shutil

            shutil.rmtree(rd.rows_dir)
        clear_failed(rd)  # units that failed last time run again
        done = rd.done_keys()
        units = plan_units(plan, done, shard)
        total_cells = len(plan.cells) * len(plan.sample_positions)
        todo = sum(len(u.indices) for u in units)
        manifest = plan.manifest(dev, bs, rd.root)
        manifest.update(
            status="running",
            started=datetime.now(UTC).isoformat(),
            **run_record(
                plan,
                rd.root,
                device=device,
                deterministic=deterministic,
                shard_size=shard,
                threads=threads,
                batch_size=bs,
            ),
        )
        rd.write_manifest(manifest)
        if plan.suite_text:
            atomic_write_text(rd.root / "suite.yaml", plan.suite_text)
        ex = Executor(plan, rd, dev, bs, quiet=quiet)
        if opts.compile or opts.channels_last:
            ex.accel = {"compile": opts.compile, "channels_last": opts.channels_last}
        manifest.update(execution={**opts.model_dump(), "device_requested": device})
        written = 0
        try:
            rep = execute(ex, units, opts, device=device, threads=threads, quiet=quiet, checks=checks)
            written = rep.written
            ex.failures[:] = list(dict.fromkeys(ex.failures + rep.failures))
            manifest["execution"].update(rep.describe())
        except RobbenchError as exc:  # a user-fixable problem (full disk, cluster, ...): exit 2, rows kept
            _record_abort(rd, manifest, exc, start)
            raise
        faults, warns = fault_report(
            rd.read_rows(repair=True, cells={c.id for c in plan.cells}), {c.id: c.label for c in plan.cells}
        )
        ex.failures[:] = list(dict.fromkeys(ex.failures + faults))
        manifest.update(warnings=warns, checkpoints=checkpoint_hashes(plan.suite, plan.zoo_dir))
        if checks:
            from robbench.run.checks.suite_checks import run_checks

            manifest["checks"] = run_checks(plan, ex, compute=opts.executor == "local", computed=rep.checks)
        manifest.update(
            status="complete" if not ex.failures else "failed",
            failures=ex.failures,
            finished=datetime.now(UTC).isoformat(),
            seconds=round(time.perf_counter() - start, 2),
        )
        rd.write_manifest(manifest)
    return RunReport(
        rd.root, len(plan.cells), written, total_cells - todo, time.perf_counter() - start, ex.failures, warns
    )


def _record_abort(rd: ResultsDir, manifest: dict[str, Any], exc: RobbenchError, start: float) -> None:
    """Best effort: mark the manifest aborted (the disk may be full; the error itself is what matters)."""
    manifest.update(
        status="aborted",
        failures=[exc.message],
        finished=datetime.now(UTC).isoformat(),
        seconds=round(time.perf_counter() - start, 2),
    )
    with contextlib.suppress(RobbenchError, OSError):
        rd.write_manifest(manifest)
