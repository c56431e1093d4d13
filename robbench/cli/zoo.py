"""``robbench zoo ...``: train, list, verify and check the model zoo's checkpoints."""

from __future__ import annotations

from pathlib import Path

import typer

from robbench.cli.app import _fail, err, out, zoo_app
from robbench.errors import RobbenchError


@zoo_app.command("train")
def zoo_train(
    name: str = typer.Argument(..., help="zoo recipe name (robbench zoo ls --recipes)"),
    dataset: str | None = typer.Option(None, help="override the recipe's data set"),
    steps: int | None = typer.Option(None, min=1, help="override the number of training steps"),
    zoo_dir: str | None = typer.Option(None, "--zoo-dir"),
    data_dir: str | None = typer.Option(None, "--data-dir"),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch CPU threads"),
    checkpoint_every: int | None = typer.Option(
        None,
        "--checkpoint-every",
        min=1,
        help="steps between resumable partial checkpoints (default: a twentieth of the run)",
    ),
) -> None:
    """Train a zoo model deterministically and cache it with its manifest (resumes a killed run)."""
    from robbench.zoo import get_recipe, train_recipe

    try:
        import torch

        from robbench.run.threads import choose_threads

        choice = choose_threads(threads)
        torch.set_num_threads(choice.threads)
        err.print(choice.describe(), highlight=False)
        recipe = get_recipe(name).with_overrides(steps=steps, dataset=dataset)
        manifest = train_recipe(recipe, zoo_dir=zoo_dir, data_dir=data_dir, checkpoint_every=checkpoint_every)
    except RobbenchError as exc:
        _fail(exc)
        return
    out.print(f"trained {name}: {manifest['metrics']} sha256 {manifest['sha256'][:16]}...", highlight=False)


@zoo_app.command("ls")
def zoo_ls(
    zoo_dir: str | None = typer.Option(None, "--zoo-dir"),
    show_recipes: bool = typer.Option(False, "--recipes", help="list trainable recipes instead"),
) -> None:
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
        metrics = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in (e.get("metrics") or {}).items()
        )
        out.print(f"  {e['key']:<34} {e.get('arch', '?'):<14} {e.get('dataset', '?'):<14} {metrics}", highlight=False)
    for p in sorted(store.root.glob("*.partial*.pt")) if store.root.is_dir() else []:
        out.print(f"  {p.name:<34} (unfinished: `robbench zoo train` resumes it)", highlight=False)


@zoo_app.command("verify")
def zoo_verify(zoo_dir: str | None = typer.Option(None, "--zoo-dir")) -> None:
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
def zoo_check(
    arch: str = typer.Argument(..., help="architecture (robbench ls models)"),
    checkpoint: Path = typer.Argument(..., help="local checkpoint file"),
    fmt: str = typer.Option(
        "state_dict", "--format", help="state_dict | ncsnv2 | score_sde | robustbench | diffusers | edm"
    ),
    sha256: str | None = typer.Option(None, "--sha256", help="expected sha256 of the file"),
    config: str | None = typer.Option(None, "--config", help="architecture config as JSON"),
) -> None:
    """Load a local checkpoint into an architecture (weights-only, hash-checked); exit 2 when it does not fit."""
    from robbench.zoo import check_checkpoint

    try:
        info = check_checkpoint(arch, checkpoint, fmt=fmt, sha256=sha256, config=config)
    except RobbenchError as exc:
        _fail(exc)
        return
    out.print(
        f"ok: {checkpoint} loads into {arch} ({info['parameters']:,} parameters, sha256 {info['sha256'][:16]}...)",
        highlight=False,
    )
