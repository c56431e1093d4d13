"""``robbench validate`` and ``robbench run``: check a suite, then run it into a results directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from robbench.cli.app import _fail, app, err, out
from robbench.cli.results import _print_table
from robbench.errors import RobbenchError

if TYPE_CHECKING:
    from robbench.run.session import RunReport


@app.command()
def validate(
    suite: Path = typer.Argument(..., help="suite YAML"),
    data_dir: str | None = typer.Option(None, "--data-dir", help="folder with the data set files"),
    zoo_dir: str | None = typer.Option(
        None, "--zoo-dir", help="model cache (default $ROBBENCH_ZOO_DIR or the user cache), as for run"
    ),
) -> None:
    """Check a suite completely (names, parameters, data, budgets) before any compute."""
    import warnings

    from robbench import api

    try:
        with warnings.catch_warnings():  # the plan's notes are printed below, once
            warnings.simplefilter("ignore")
            plan = api.validate(suite, data_dir=data_dir, zoo_dir=zoo_dir)
    except RobbenchError as exc:
        _fail(exc)
        return
    n = len(plan.sample_positions)
    out.print(
        f"[green]valid:[/] suite {plan.suite.name!r}: {len(plan.cells)} cells x {n} samples "
        f"= {len(plan.cells) * n} rows"
    )
    for note in plan.notes:
        if note.endswith("passes/sample)"):  # what an adaptive entry expands into: information, not a warning
            out.print(f"[cyan]expansion:[/] {escape(note)}", highlight=False, soft_wrap=True)
        else:
            err.print(f"[bold yellow]warning:[/] {escape(note)}", highlight=False, soft_wrap=True)


_SUBMITIT = "submitit (Slurm; pip install 'robbench\\[submitit]')"
# a string, not a Path: Typer would turn ``--out ""`` into "." (the current directory)
OutDir = Annotated[str | None, typer.Option("--out", help="results directory (default results/SUITE_NAME)")]
Device = Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")]
BatchSize = Annotated[int | None, typer.Option("--batch-size", min=1, help="samples per batch (does not change rows)")]
Fresh = Annotated[bool, typer.Option("--fresh", help="delete stored rows and recompute everything")]
Resume = Annotated[bool, typer.Option("--resume/--no-resume", help="skip rows already stored (default)")]
DataDir = Annotated[str | None, typer.Option("--data-dir", help="folder with the data set files")]
ZooDir = Annotated[
    str | None, typer.Option("--zoo-dir", help="model cache (default $ROBBENCH_ZOO_DIR or the user cache)")
]
Threads = Annotated[int | None, typer.Option("--threads", min=1, help="torch CPU threads")]
ShardSize = Annotated[
    int | None,
    typer.Option("--shard-size", min=1, help="samples per stored shard: the unit of resume (does not change rows)"),
]
Deterministic = Annotated[
    bool,
    typer.Option("--deterministic", help="torch deterministic algorithms, for repeatable GPU runs (recorded)"),
]
TableFmt = Annotated[str, typer.Option("--table", help="print the summary as rich | md | csv | latex | json | none")]
Quiet = Annotated[bool, typer.Option("--quiet", help="no progress bars")]
Executor = Annotated[str, typer.Option("--executor", help=f"local | {_SUBMITIT}")]
Workers = Annotated[int, typer.Option("--workers", min=1, help="local: worker processes (--threads each)")]
Shards = Annotated[int | None, typer.Option("--shards", min=1, help="submitit: jobs the units are grouped into (8)")]
Cluster = Annotated[str, typer.Option("--cluster", help="submitit: auto | slurm | local (subprocesses) | debug")]
Partition = Annotated[str | None, typer.Option("--slurm-partition", help="submitit: Slurm partition")]
Account = Annotated[str | None, typer.Option("--slurm-account", help="submitit: Slurm account")]
Gpus = Annotated[int | None, typer.Option("--gpus-per-job", min=0, help="submitit: GPUs per job (one task per GPU)")]
Cpus = Annotated[int | None, typer.Option("--cpus-per-job", min=1, help="submitit: CPUs per task")]
MemGb = Annotated[float | None, typer.Option("--mem-gb", help="submitit: memory per job (GB)")]
TimeoutMin = Annotated[
    int | None,
    typer.Option("--timeout-min", min=1, help="submitit: job time limit (default 240; timed-out jobs requeue)"),
]
Retries = Annotated[
    int, typer.Option("--max-retries", min=0, help="extra attempts for a failing unit before its rows record the error")
]
MaxMinutes = Annotated[
    float | None,
    typer.Option(
        "--max-minutes",
        help="start no new unit after N minutes; units in flight finish and are stored; rerun to resume",
    ),
]
Compile = Annotated[bool, typer.Option("--compile", help="torch.compile the classifier and generative models")]
ChannelsLast = Annotated[bool, typer.Option("--channels-last", help="channels-last memory format for the models")]
Checks = Annotated[
    bool,
    typer.Option(
        "--checks/--no-checks",
        help="run the false-robustness checks after the units (recorded in the manifest, listed under the table)",
    ),
]


def _report(report: RunReport, table_fmt: str) -> None:
    """What ``robbench run`` prints when the run ends; exit 3 when units failed."""
    err.print(
        f"{report.rows_written} rows computed, {report.rows_skipped} already stored, "
        f"{report.seconds:.1f}s -> {report.out}",
        highlight=False,
    )
    if report.units_left:
        err.print(
            f"[bold yellow]stopped at the time limit:[/] {report.units_left} units not started; run the same "
            "command again to resume",
            highlight=False,
        )
    if table_fmt != "none":
        _print_table(report.out, table_fmt, None)
    for w in report.warnings:
        err.print(f"[bold yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
    if report.failures:
        for f in report.failures:
            err.print(f"[bold red]failed:[/] {escape(f)}", highlight=False, soft_wrap=True)
        raise typer.Exit(3)


#: the ``run`` options that are execution options (:class:`robbench.run.options.ExecOptions`)
_EXECUTION = (
    *("executor", "workers", "shards", "cluster", "slurm_partition", "slurm_account", "gpus_per_job"),
    *("cpus_per_job", "mem_gb", "timeout_min", "max_retries", "channels_last", "max_minutes"),
)


@app.command()
def run(
    suite: Annotated[Path, typer.Argument(help="suite YAML")],
    out_dir: OutDir = None,
    device: Device = "auto",
    batch_size: BatchSize = None,
    fresh: Fresh = False,
    resume: Resume = True,
    data_dir: DataDir = None,
    zoo_dir: ZooDir = None,
    threads: Threads = None,
    shard_size: ShardSize = None,
    deterministic: Deterministic = False,
    table_fmt: TableFmt = "rich",
    quiet: Quiet = False,
    executor: Executor = "local",
    workers: Workers = 1,
    shards: Shards = None,
    cluster: Cluster = "auto",
    slurm_partition: Partition = None,
    slurm_account: Account = None,
    gpus_per_job: Gpus = None,
    cpus_per_job: Cpus = None,
    mem_gb: MemGb = None,
    timeout_min: TimeoutMin = None,
    max_retries: Retries = 2,
    max_minutes: MaxMinutes = None,
    compile_models: Compile = False,
    channels_last: ChannelsLast = False,
    checks: Checks = True,
) -> None:
    """Run a suite: every defense x attack x threat, one stored row per sample; prints the table."""
    if executor == "local" and workers > 1:
        from robbench.run.backends.pool import prestart_workers

        prestart_workers()  # the workers' fork server imports torch while this process plans
    from robbench import api

    given = locals()
    execution = {k: given[k] for k in _EXECUTION if given[k] is not None} | {"compile": compile_models}
    try:
        report = api.run(
            suite,
            out=out_dir,
            device=device,
            batch_size=batch_size,
            fresh=fresh or not resume,
            data_dir=data_dir,
            zoo_dir=zoo_dir,
            threads=threads,
            quiet=quiet,
            shard_size=shard_size,
            deterministic=deterministic,
            execution=execution,
            checks=checks,
        )
    except RobbenchError as exc:
        _fail(exc)
        return
    _report(report, table_fmt)
