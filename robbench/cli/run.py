"""The ``robbench`` command line: thin Typer commands over :mod:`robbench.api`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from robbench.cli.app import _fail, app, err, out
from robbench.cli.results import _print_table
from robbench.errors import RobbenchError


@app.command()
def validate(
    suite: Path = typer.Argument(..., help="suite YAML"),
    data_dir: str | None = typer.Option(None, "--data-dir", help="folder with the data set files"),
) -> None:
    """Check a suite completely (names, parameters, data, budgets) before any compute."""
    from robbench import api

    try:
        s = api.validate(suite, data_dir=data_dir)
    except RobbenchError as exc:
        _fail(exc)
        return
    import warnings

    from robbench.run.plan import Plan

    with warnings.catch_warnings():  # the plan's notes are printed below, once
        warnings.simplefilter("ignore")
        plan = Plan(s, data_dir=data_dir)
    out.print(
        f"[green]valid:[/] suite {s.name!r}: {len(plan.cells)} cells x {len(plan.sample_positions)} samples "
        f"= {len(plan.cells) * len(plan.sample_positions)} rows"
    )
    for note in plan.notes:
        err.print(f"[bold yellow]warning:[/] {escape(note)}", highlight=False, soft_wrap=True)


@app.command()
def run(
    suite: Path = typer.Argument(..., help="suite YAML"),
    out_dir: Path | None = typer.Option(None, "--out", help="results directory (default results/SUITE_NAME)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="samples per batch (does not change rows)"),
    fresh: bool = typer.Option(False, "--fresh", help="delete stored rows and recompute everything"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="skip rows already stored (default)"),
    data_dir: str | None = typer.Option(None, "--data-dir", help="folder with the data set files"),
    zoo_dir: str | None = typer.Option(
        None, "--zoo-dir", help="model cache (default $ROBBENCH_ZOO_DIR or the user cache)"
    ),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch CPU threads"),
    shard_size: int | None = typer.Option(
        None, "--shard-size", min=1, help="samples per stored shard: the unit of resume (does not change rows)"
    ),
    deterministic: bool = typer.Option(
        False,
        "--deterministic",
        help="torch deterministic algorithms, for repeatable GPU runs (recorded in the manifest)",
    ),
    table_fmt: str = typer.Option("rich", "--table", help="print the summary as rich | md | csv | latex | json | none"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
    executor: str = typer.Option(
        "local", "--executor", help="local | submitit (Slurm; pip install 'robbench\\[submitit]')"
    ),
    workers: int = typer.Option(
        1, "--workers", min=1, help="local: worker processes (--threads each; default cores/workers)"
    ),
    shards: int | None = typer.Option(
        None, "--shards", min=1, help="submitit: jobs the work units are grouped into (default 8)"
    ),
    cluster: str = typer.Option("auto", "--cluster", help="submitit: auto | slurm | local (subprocesses) | debug"),
    slurm_partition: str | None = typer.Option(None, "--slurm-partition", help="submitit: Slurm partition"),
    slurm_account: str | None = typer.Option(None, "--slurm-account", help="submitit: Slurm account"),
    gpus_per_job: int | None = typer.Option(
        None, "--gpus-per-job", min=0, help="submitit: GPUs per job (one task per GPU)"
    ),
    cpus_per_job: int | None = typer.Option(None, "--cpus-per-job", min=1, help="submitit: CPUs per task"),
    mem_gb: float | None = typer.Option(None, "--mem-gb", help="submitit: memory per job (GB)"),
    timeout_min: int | None = typer.Option(
        None, "--timeout-min", min=1, help="submitit: job time limit (default 240; timed-out jobs requeue)"
    ),
    max_retries: int = typer.Option(
        2, "--max-retries", min=0, help="extra attempts for a failing unit before its rows record the error"
    ),
    compile_models: bool = typer.Option(False, "--compile", help="torch.compile the classifier and generative models"),
    channels_last: bool = typer.Option(False, "--channels-last", help="channels-last memory format for the models"),
    checks: bool = typer.Option(
        True,
        "--checks/--no-checks",
        help="run the false-robustness checks after the units "
        "(robbench.run.checks; recorded in the manifest, listed under the table)",
    ),
) -> None:
    """Run a suite: every defense x attack x threat, one stored row per sample; prints the table."""
    if executor == "local" and workers > 1:
        from robbench.run.backends.pool import prestart_workers

        prestart_workers()  # the workers' fork server imports torch while this process plans
    from robbench import api

    try:
        execution = {
            "executor": executor,
            "workers": workers,
            "shards": shards,
            "cluster": cluster,
            "slurm_partition": slurm_partition,
            "slurm_account": slurm_account,
            "gpus_per_job": gpus_per_job,
            "cpus_per_job": cpus_per_job,
            "mem_gb": mem_gb,
            "timeout_min": timeout_min,
            "max_retries": max_retries,
            "compile": compile_models,
            "channels_last": channels_last,
        }
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
            execution={k: v for k, v in execution.items() if v is not None},
            checks=checks,
        )
    except RobbenchError as exc:
        _fail(exc)
        return
    err.print(
        f"{report.rows_written} rows computed, {report.rows_skipped} already stored, "
        f"{report.seconds:.1f}s -> {report.out}",
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
