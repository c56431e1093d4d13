"""The ``robbench`` command line: thin Typer commands over :mod:`robbench.api`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from robbench.errors import RobbenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="robbench: honest benchmarks of adversarial defenses.")
zoo_app = typer.Typer(no_args_is_help=True, help="Train, list and verify zoo models.")
app.add_typer(zoo_app, name="zoo")

out = Console()
err = Console(stderr=True)


def _fail(exc: RobbenchError) -> None:
    err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
    if exc.hint:
        err.print(f"  [bold]fix:[/] {escape(exc.hint)}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


@app.command()
def validate(suite: Path = typer.Argument(..., help="suite YAML"),
             data_dir: Optional[str] = typer.Option(None, "--data-dir", help="folder with the data set files")) -> None:
    """Check a suite completely (names, parameters, data, budgets) before any compute."""
    from robbench import api

    try:
        s = api.validate(suite, data_dir=data_dir)
    except RobbenchError as exc:
        _fail(exc)
        return
    from robbench.runner import Plan

    import warnings

    with warnings.catch_warnings():  # the plan's notes are printed below, once
        warnings.simplefilter("ignore")
        plan = Plan(s, data_dir=data_dir)
    out.print(f"[green]valid:[/] suite {s.name!r}: {len(plan.cells)} cells x {len(plan.sample_positions)} samples "
              f"= {len(plan.cells) * len(plan.sample_positions)} rows")
    for note in plan.notes:
        err.print(f"[bold yellow]warning:[/] {escape(note)}", highlight=False, soft_wrap=True)


@app.command()
def run(suite: Path = typer.Argument(..., help="suite YAML"),
        out_dir: Optional[Path] = typer.Option(None, "--out", help="results directory (default results/SUITE_NAME)"),
        device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="samples per batch (does not change rows)"),
        fresh: bool = typer.Option(False, "--fresh", help="delete stored rows and recompute everything"),
        resume: bool = typer.Option(True, "--resume/--no-resume", help="skip rows already stored (default)"),
        data_dir: Optional[str] = typer.Option(None, "--data-dir", help="folder with the data set files"),
        zoo_dir: Optional[str] = typer.Option(None, "--zoo-dir", help="model cache (default $ROBBENCH_ZOO_DIR or the user cache)"),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads"),
        shard_size: Optional[int] = typer.Option(None, "--shard-size", min=1,
                                                 help="samples per stored shard: the unit of resume (does not change rows)"),
        deterministic: bool = typer.Option(False, "--deterministic",
                                           help="torch deterministic algorithms, for repeatable GPU runs (recorded in the manifest)"),
        table_fmt: str = typer.Option("rich", "--table", help="print the summary as rich | md | csv | latex | json | none"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
        executor: str = typer.Option("local", "--executor", help="local | submitit (Slurm; pip install 'robbench\\[submitit]')"),
        workers: int = typer.Option(1, "--workers", min=1, help="local: worker processes (--threads each; default cores/workers)"),
        shards: Optional[int] = typer.Option(None, "--shards", min=1, help="submitit: jobs the work units are grouped into (default 8)"),
        cluster: str = typer.Option("auto", "--cluster", help="submitit: auto | slurm | local (subprocesses) | debug"),
        slurm_partition: Optional[str] = typer.Option(None, "--slurm-partition", help="submitit: Slurm partition"),
        slurm_account: Optional[str] = typer.Option(None, "--slurm-account", help="submitit: Slurm account"),
        gpus_per_job: Optional[int] = typer.Option(None, "--gpus-per-job", min=0, help="submitit: GPUs per job (one task per GPU)"),
        cpus_per_job: Optional[int] = typer.Option(None, "--cpus-per-job", min=1, help="submitit: CPUs per task"),
        mem_gb: Optional[float] = typer.Option(None, "--mem-gb", help="submitit: memory per job (GB)"),
        timeout_min: Optional[int] = typer.Option(None, "--timeout-min", min=1, help="submitit: job time limit (default 240; timed-out jobs requeue)"),
        max_retries: int = typer.Option(2, "--max-retries", min=0, help="extra attempts for a failing unit before its rows record the error"),
        compile_models: bool = typer.Option(False, "--compile", help="torch.compile the classifier and generative models"),
        channels_last: bool = typer.Option(False, "--channels-last", help="channels-last memory format for the models"),
        checks: bool = typer.Option(True, "--checks/--no-checks", help="run the false-robustness checks after the units "
                                    "(robbench.checks; recorded in the manifest, listed under the table)")) -> None:
    """Run a suite: every defense x attack x threat, one stored row per sample; prints the table."""
    from robbench import executors

    if executor == "local" and workers > 1:
        executors.prestart_workers()  # the workers' fork server imports torch while this process plans
    from robbench import api

    try:
        execution = dict(executor=executor, workers=workers, shards=shards, cluster=cluster, slurm_partition=slurm_partition,
                         slurm_account=slurm_account, gpus_per_job=gpus_per_job, cpus_per_job=cpus_per_job, mem_gb=mem_gb,
                         timeout_min=timeout_min, max_retries=max_retries, compile=compile_models, channels_last=channels_last)
        report = api.run(suite, out=out_dir, device=device, batch_size=batch_size, fresh=fresh or not resume,
                         data_dir=data_dir, zoo_dir=zoo_dir, threads=threads, quiet=quiet, shard_size=shard_size,
                         deterministic=deterministic, execution={k: v for k, v in execution.items() if v is not None},
                         checks=checks)
    except RobbenchError as exc:
        _fail(exc)
        return
    err.print(f"{report.rows_written} rows computed, {report.rows_skipped} already stored, "
              f"{report.seconds:.1f}s -> {report.out}", highlight=False)
    if table_fmt != "none":
        _print_table(report.out, table_fmt, None)
    for w in report.warnings:
        err.print(f"[bold yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
    if report.failures:
        for f in report.failures:
            err.print(f"[bold red]failed:[/] {escape(f)}", highlight=False, soft_wrap=True)
        raise typer.Exit(3)


def _print_table(results: Path, fmt: str, scoring: Optional[str], *, pivot: bool = False, worst_case: bool = True,
                 reported: Optional[Path] = None) -> None:
    from robbench.formatting import render, rich_renderable
    from robbench.summary import load_results, reported_from_suite, summarize

    loaded = load_results(results)
    manifest = reported_from_suite(loaded.manifest, reported) if reported else loaded.manifest
    summary = summarize(loaded.rows, manifest, scoring=scoring, worst_case=worst_case)
    title = f"{loaded.suite_name}: robust accuracy (%)"
    if fmt == "rich":
        out.print(rich_renderable(summary, title, pivot=pivot, manifest=manifest, notes=loaded.notes, width=out.width))
        _print_checks(loaded.manifest, fmt)
        return
    sys.stdout.write(render(summary, fmt, title, pivot=pivot, manifest=manifest, notes=loaded.notes if pivot else ()))
    if not pivot:
        for note in loaded.notes:
            err.print(f"note: {note}", highlight=False, soft_wrap=True)
    _print_checks(loaded.manifest, fmt)


def _print_checks(manifest: dict, fmt: str) -> None:  # type: ignore[type-arg]
    """The run's checks (robbench.checks) under the table; on stderr for machine-readable formats."""
    from robbench.checks import format_checks

    lines = format_checks(manifest.get("checks"))
    if not lines:
        return
    if fmt in ("rich", "md"):
        out.print("\nchecks:" if fmt == "rich" else "\n**checks**\n", highlight=False)
        for line in lines:
            out.print(f"- {escape(line)}", highlight=False, soft_wrap=True)
    else:
        for line in lines:
            err.print(f"check: {escape(line)}", highlight=False, soft_wrap=True)


def _check_choice(value: Optional[str], choices: tuple[str, ...], option: str) -> None:
    if value is not None and value not in choices:
        raise RobbenchError(f"unknown {option} {value!r}", hint=f"use one of {', '.join(choices)}")


@app.command()
def table(results: Path = typer.Argument(..., help="results directory"),
          fmt: str = typer.Option("rich", "--format", "-f", help="rich | md | csv | latex | json"),
          scoring: Optional[str] = typer.Option(None, help="single | mean | majority | worst (stochastic defenses)"),
          pivot: bool = typer.Option(False, "--pivot", help="the papers' layout: defenses x (attack, threat)"),
          worst_case: bool = typer.Option(True, "--worst-case/--no-worst-case", help="add the worst case over attacks"),
          reported: Optional[Path] = typer.Option(None, "--reported", help="take the reported numbers from this suite file "
                                                  "(the same suite, e.g. with numbers added after the run)")) -> None:
    """Summarise stored rows: accuracy with Wilson 95% CIs, reported numbers beside measured ones."""
    from robbench.formatting import FORMATS
    from robbench.summary import SCORINGS

    try:
        _check_choice(fmt, FORMATS, "--format")
        _check_choice(scoring, SCORINGS, "--scoring")
        _print_table(results, fmt, scoring, pivot=pivot, worst_case=worst_case, reported=reported)
    except RobbenchError as exc:
        _fail(exc)


@app.command()
def compare(a: Path = typer.Argument(..., help="baseline results directory"),
            b: Path = typer.Argument(..., help="results directory to check against A"),
            tolerance: Optional[float] = typer.Option(None, "--tolerance", help="exit 1 when any cell of B is worse "
                                                      "than A by more than this many percentage points"),
            fmt: str = typer.Option("rich", "--format", "-f", help="rich | md | csv | json"),
            scoring: Optional[str] = typer.Option(None, help="single | mean | majority | worst (both sides)"),
            allow_missing: bool = typer.Option(False, "--allow-missing", help="with --tolerance: cells of A absent "
                                               "in B do not fail the check")) -> None:
    """Compare two results directories sample by sample: accuracy change and exact McNemar p per cell."""
    from robbench import api
    from robbench.compare import render, to_rich
    from robbench.summary import SCORINGS

    try:
        _check_choice(fmt, ("rich", "md", "csv", "json"), "--format")
        _check_choice(scoring, SCORINGS, "--scoring")
        result = api.compare(a, b, tolerance=tolerance, scoring=scoring, allow_missing=allow_missing)
    except RobbenchError as exc:
        _fail(exc)
        return
    if fmt == "rich":
        out.print(to_rich(result))
    else:
        sys.stdout.write(render(result, fmt))
        if fmt != "md":
            err.print(result.verdict(), highlight=False, soft_wrap=True)
    if not result.passed:
        raise typer.Exit(1)


@app.command()
def plot(results: Path = typer.Argument(..., help="results directory"),
         out_dir: Optional[Path] = typer.Option(None, "--out", help="folder for the PNGs (default RESULTS/plots)"),
         kind: list[str] = typer.Option(["all"], "--kind", "-k", help="eps | tradeoff | trace | all (repeatable)"),
         scoring: Optional[str] = typer.Option(None, help="single | mean | majority | worst (stochastic defenses)")) -> None:
    """Draw PNGs: robust accuracy vs eps, the clean/robust trade-off over a defense parameter, loss traces."""
    from robbench import api
    from robbench.summary import SCORINGS

    try:
        _check_choice(scoring, SCORINGS, "--scoring")
        result = api.plot(results, out=out_dir, kinds=tuple(kind), scoring=scoring)
    except RobbenchError as exc:
        _fail(exc)
        return
    for path in result.paths:
        out.print(f"wrote {path}", highlight=False)
    for why in result.skipped:
        err.print(f"skipped {why}", highlight=False, soft_wrap=True)


@app.command("ls")
def ls(kind: Optional[str] = typer.Argument(None, help="defenses | attacks | models | datasets")) -> None:
    """List registered components with a one-line description each."""
    from robbench import api

    try:
        listing = api.list_components(kind)
    except RobbenchError as exc:
        _fail(exc)
        return
    for k, items in listing.items():
        out.print(f"[bold]{k}[/]")
        for name, desc in items:
            out.print(f"  {name:<22} {escape(desc)}", highlight=False)


@app.command()
def doctor(zoo_dir: Optional[str] = typer.Option(None, "--zoo-dir", help="model cache to inspect"),
           data_dir: Optional[str] = typer.Option(None, "--data-dir", help="folder with the data set files"),
           verify: bool = typer.Option(True, "--verify/--no-verify", help="recheck the sha256 of every zoo checkpoint"),
           as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Check this installation: versions, device, data sets, zoo (with hashes), extras, plugins."""
    import json

    from robbench.doctor import SECTIONS, diagnose

    findings = diagnose(zoo_dir=zoo_dir, data_dir=data_dir, verify=verify)
    if as_json:
        sys.stdout.write(json.dumps([f.as_dict() for f in findings], indent=2) + "\n")
        return
    from rich.markup import escape

    marks = {"ok": "[green]ok[/]     ", "missing": "[yellow]missing[/]", "bad": "[red]BAD[/]    ", "info": "[dim]info[/]   "}
    for section in SECTIONS:
        out.print(f"[bold]{section}[/]")
        for f in (f for f in findings if f.section == section):
            out.print(f"  {marks[f.status]} {escape(f.name):<24} {escape(f.detail)}", highlight=False, soft_wrap=True)
            if f.fix and f.status != "ok":
                out.print(f"  {'':<7} {'':<24} [bold]fix:[/] {escape(f.fix)}", highlight=False, soft_wrap=True)


@zoo_app.command("train")
def zoo_train(name: str = typer.Argument(..., help="zoo recipe name (robbench zoo ls --recipes)"),
              dataset: Optional[str] = typer.Option(None, help="override the recipe's data set"),
              steps: Optional[int] = typer.Option(None, min=1, help="override the number of training steps"),
              zoo_dir: Optional[str] = typer.Option(None, "--zoo-dir"),
              data_dir: Optional[str] = typer.Option(None, "--data-dir"),
              threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads"),
              checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", min=1,
                                                             help="steps between resumable partial checkpoints "
                                                                  "(default: a twentieth of the run)")) -> None:
    """Train a zoo model deterministically and cache it with its manifest (resumes a killed run)."""
    from robbench.zoo import get_recipe, train_recipe

    try:
        if threads:
            import torch

            torch.set_num_threads(threads)
        recipe = get_recipe(name).with_overrides(steps=steps, dataset=dataset)
        manifest = train_recipe(recipe, zoo_dir=zoo_dir, data_dir=data_dir, checkpoint_every=checkpoint_every)
    except RobbenchError as exc:
        _fail(exc)
        return
    out.print(f"trained {name}: {manifest['metrics']} sha256 {manifest['sha256'][:16]}...", highlight=False)


@zoo_app.command("ls")
def zoo_ls(zoo_dir: Optional[str] = typer.Option(None, "--zoo-dir"),
           show_recipes: bool = typer.Option(False, "--recipes", help="list trainable recipes instead")) -> None:
    """Show cached zoo models with their metrics (or the recipes)."""
    from robbench.zoo import ZooStore, recipes

    if show_recipes:
        for name, r in recipes().items():
            out.print(f"  {name:<26} {r.arch:<14} {r.dataset:<14} {r.description}", highlight=False)
        return
    store = ZooStore(zoo_dir)
    entries = store.entries()
    if not entries:
        out.print(f"no models cached in {store.root}")
    for e in entries:
        metrics = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in (e.get("metrics") or {}).items())
        out.print(f"  {e['key']:<34} {e.get('arch', '?'):<14} {e.get('dataset', '?'):<14} {metrics}", highlight=False)
    for p in sorted(store.root.glob("*.partial*.pt")) if store.root.is_dir() else []:
        out.print(f"  {p.name:<34} (unfinished: `robbench zoo train` resumes it)", highlight=False)


@zoo_app.command("verify")
def zoo_verify(zoo_dir: Optional[str] = typer.Option(None, "--zoo-dir")) -> None:
    """Recheck the sha256 of every cached checkpoint; exit 2 when any fails."""
    from robbench.zoo import ZooStore

    rows = ZooStore(zoo_dir).verify()
    bad = 0
    for key, ok, detail in rows:
        bad += not ok
        out.print(f"  {'[green]ok[/]' if ok else '[red]BAD[/]'}  {key}  {detail}", highlight=False)
    if bad:
        err.print(f"[bold red]error:[/] {bad} checkpoint(s) failed verification", highlight=False)
        err.print("  [bold]fix:[/] delete them and retrain with `robbench zoo train NAME`", highlight=False)
        raise typer.Exit(2)


@zoo_app.command("check")
def zoo_check(arch: str = typer.Argument(..., help="architecture (robbench ls models)"),
              checkpoint: Path = typer.Argument(..., help="local checkpoint file"),
              fmt: str = typer.Option("state_dict", "--format", help="state_dict | ncsnv2 | robustbench"),
              sha256: Optional[str] = typer.Option(None, "--sha256", help="expected sha256 of the file"),
              config: Optional[str] = typer.Option(None, "--config", help="architecture config as JSON")) -> None:
    """Load a local checkpoint into an architecture (weights-only, hash-checked); exit 2 when it does not fit."""
    from robbench.zoo import check_checkpoint

    try:
        info = check_checkpoint(arch, checkpoint, fmt=fmt, sha256=sha256, config=config)
    except RobbenchError as exc:
        _fail(exc)
        return
    out.print(f"ok: {checkpoint} loads into {arch} ({info['parameters']:,} parameters, sha256 {info['sha256'][:16]}...)",
              highlight=False)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except RobbenchError as exc:  # errors raised outside a command's own handler
        err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
        if exc.hint:
            err.print(f"  [bold]fix:[/] {escape(exc.hint)}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
