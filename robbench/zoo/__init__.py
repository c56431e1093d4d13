"""The model zoo: recipes, training on first use, a sha256-verified cache, and checkpoint loading."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from robbench.errors import CheckpointError
from robbench.zoo.recipes import Recipe, get_recipe, recipes
from robbench.zoo.store import ZooStore, default_zoo_dir, load_state_dict

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = [
    "Recipe",
    "ZooStore",
    "check_checkpoint",
    "check_model_ref",
    "default_zoo_dir",
    "get_recipe",
    "load_model",
    "recipes",
    "train_recipe",
]


def _progress_bar(description: str, total: int) -> tuple[Progress, TaskID]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    prog = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeRemainingColumn(),
        transient=False,
    )
    task = prog.add_task(description, total=total, loss=float("nan"))
    return prog, task


def train_recipe(
    recipe: Recipe,
    *,
    zoo_dir: str | Path | None = None,
    quiet: bool = False,
    data_dir: str | None = None,
    checkpoint_every: int | None = None,
) -> dict[str, Any]:
    """Train ``recipe`` deterministically and store it in the zoo; returns its manifest.

    Trainers write a partial checkpoint every ``checkpoint_every`` steps (default: a twentieth of
    the run) next to the final one; a run that is killed resumes from it with bit-identical results.
    """
    from robbench.core.seeding import derive_seed, generator
    from robbench.data import load_dataset
    from robbench.models import build_model, init_weights
    from robbench.zoo.train import TRAINERS

    if recipe.trainer not in TRAINERS:
        _load_trainer_modules()
    if recipe.trainer not in TRAINERS:
        raise CheckpointError(
            f"recipe {recipe.name!r} names unknown trainer {recipe.trainer!r}", hint=f"use one of {sorted(TRAINERS)}"
        )
    ds = load_dataset(recipe.dataset, data_dir)
    model = build_model(recipe.arch, **recipe.config)
    _check_fits(recipe, model, ds)
    train, test = ds.load("train"), ds.load("test")
    init_weights(model, generator(derive_seed(recipe.seed, "init", recipe.name)))
    steps = int(recipe.train.get("steps", 1000))
    prog, task = _progress_bar(f"zoo train {recipe.name}", steps)
    from robbench.zoo.loop import Checkpointer

    ckpt = Checkpointer(recipe, zoo_dir, steps, checkpoint_every)
    if ckpt.path.is_file() and not quiet:
        prog.console.print(f"resuming {recipe.name} from its partial checkpoint {ckpt.path}", highlight=False)
    start, cpu_start = time.perf_counter(), time.process_time()
    with prog if not quiet else _Null():
        metrics = TRAINERS[recipe.trainer](
            model,
            recipe,
            train,
            test,
            progress=lambda step, loss: prog.update(task, completed=step, loss=loss),
            zoo_dir=zoo_dir,
            data_dir=data_dir,
            dataset=ds,
            checkpoint_every=checkpoint_every,
            checkpointer=ckpt,
        )
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    extra = metrics.pop("_extra_state", None)
    if extra:
        state.update(extra)
    manifest = _zoo_manifest(recipe, steps, metrics, seconds, cpu_seconds, ckpt.resumed_from)
    saved = ZooStore(zoo_dir).save(recipe.key, state, manifest)
    ckpt.finish()
    return saved


def _zoo_manifest(
    recipe: Recipe, steps: int, metrics: dict[str, Any], seconds: float, cpu_seconds: float, resumed: int | None
) -> dict[str, Any]:
    """The JSON manifest stored beside a trained checkpoint."""
    from robbench import __version__

    return {
        "name": recipe.name,
        "recipe_hash": recipe.hash,
        "arch": recipe.arch,
        "config": recipe.config,
        "dataset": recipe.dataset,
        "trainer": recipe.trainer,
        "train": recipe.train,
        "seed": recipe.seed,
        "steps": steps,
        "metrics": metrics,
        "train_seconds": round(seconds, 2),
        "robbench_version": __version__,
        "train_cpu_seconds": round(cpu_seconds, 2),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "command": _command(recipe),
        "resumed_from_step": resumed,
    }


def _check_fits(recipe: Recipe, model: nn.Module, ds: Any) -> None:
    """The data set's channels and classes fit the architecture (e.g. after ``--dataset``)."""
    channels = getattr(model, "in_channels", recipe.config.get("in_channels"))
    if channels is not None and int(channels) != ds.shape[0]:
        raise CheckpointError(
            f"recipe {recipe.name!r}: {recipe.arch} takes {channels}-channel images but data set "
            f"{ds.name!r} has {ds.shape[0]}",
            hint="pick a data set of the recipe's kind, or another recipe",
        )
    classes = getattr(model, "num_classes", recipe.config.get("num_classes"))
    if classes is not None and int(classes) != ds.num_classes:
        raise CheckpointError(
            f"recipe {recipe.name!r}: {recipe.arch} has {classes} classes but data set "
            f"{ds.name!r} has {ds.num_classes}",
            hint="pick a data set of the recipe's kind, or another recipe",
        )


def _command(recipe: Recipe) -> str:
    """The ``robbench zoo train`` command line that reproduces ``recipe`` (with its overrides)."""
    cmd = f"robbench zoo train {recipe.name}"
    base = recipes().get(recipe.name)
    if base is not None and recipe.dataset != base.dataset:
        cmd += f" --dataset {recipe.dataset}"
    if base is not None and recipe.train.get("steps") != base.train.get("steps"):
        cmd += f" --steps {recipe.train.get('steps')}"
    return cmd


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


def _load_trainer_modules() -> None:
    """Import modules that register extra trainers (score, diffusion, adversarial, ...)."""
    import importlib

    for mod in ("robbench.zoo.train_generative", "robbench.zoo.train_adversarial"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def _ref_fields(ref: Any) -> dict[str, Any]:
    if isinstance(ref, str):
        return {"zoo": ref}
    if hasattr(ref, "model_dump"):
        return dict(ref.model_dump())
    return dict(ref)


def require_checkpoint(f: dict[str, Any]) -> None:
    """The checkpoint file (or diffusers folder) of a reference exists; else a message naming it and, for a
    public format, where it comes from."""
    path = Path(f["checkpoint"]).expanduser()
    if path.is_dir() and f.get("format") != "diffusers":
        raise CheckpointError(
            f"checkpoint {f['checkpoint']} is a folder, not a file",
            hint="give the path of the checkpoint file (a folder is read only with format: diffusers)",
        )
    if not (path.is_file() or (f.get("format") == "diffusers" and path.is_dir())):
        from robbench.zoo.external import SOURCES

        source = SOURCES.get(str(f.get("format")))
        raise CheckpointError(
            f"checkpoint {f['checkpoint']} not found",
            hint=(f"get it from {source} and put it at that path, or edit the path; " if source else "")
            + "give the local path of the checkpoint file (docs/checkpoints.md lists where the public ones come from)",
        )


def check_model_ref(ref: Any, where: str) -> None:
    """Validate a model reference before any compute: names resolve, files exist.

    A local checkpoint is checked against its ``sha256`` (when given), opened weights-only (nothing
    in it runs) and loaded into its architecture, so a corrupt or malicious file, or one whose tensor
    names or shapes do not fit the architecture, is refused by ``robbench validate`` before a results
    directory exists. Zoo checkpoints are verified against their manifests when loaded.
    """
    from robbench.core.registry import models

    f = _ref_fields(ref)
    try:
        if f.get("zoo"):
            r = get_recipe(f["zoo"])
            models.entry(r.arch)
        elif f.get("robustbench"):
            from robbench.zoo import robustbench_zoo

            robustbench_zoo.check(f["robustbench"], f.get("sha256"))
        else:
            models.entry(f["arch"])
            load_model(f, train_missing=False, quiet=True)  # names a missing file first (require_checkpoint)
    except CheckpointError as exc:
        raise CheckpointError(f"{where}: {exc.message}", hint=exc.hint) from None
    except Exception as exc:
        msg = getattr(exc, "message", str(exc))
        raise CheckpointError(f"{where}: {msg}", hint=getattr(exc, "hint", None)) from None


def model_identity(ref: Any) -> dict[str, Any]:
    """What identifies a model's weights, for result hashing: zoo name + recipe hash, or file hash."""
    f = _ref_fields(ref)
    if f.get("zoo"):
        r = get_recipe(f["zoo"])
        return {"zoo": r.name, "recipe": r.hash}
    if f.get("robustbench"):
        from robbench.zoo import robustbench_zoo

        return robustbench_zoo.identity(f["robustbench"], f.get("sha256"))
    from robbench.zoo.store import sha256_file

    path = Path(f["checkpoint"]).expanduser()
    if path.is_dir():  # a diffusers folder: every file of it (weights and configs) identifies the model
        files = sorted(p for p in path.rglob("*") if p.is_file())
        digest = {str(p.relative_to(path)): sha256_file(p) for p in files}
        return {"arch": f["arch"], "config": f.get("config", {}), "files": digest}
    return {
        "arch": f["arch"],
        "config": f.get("config", {}),
        "sha256": f.get("sha256") or sha256_file(path),
    }


def load_model(
    ref: Any,
    *,
    zoo_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
    train_missing: bool = True,
    quiet: bool = False,
) -> nn.Module:
    """Load a model named by a zoo name or a checkpoint reference; train a missing zoo model."""
    from robbench.models import build_model

    f = _ref_fields(ref)
    store = ZooStore(zoo_dir)
    if f.get("robustbench"):
        from robbench.zoo import robustbench_zoo

        model = robustbench_zoo.load(f["robustbench"], f.get("sha256"))
        for p in model.parameters():
            p.requires_grad_(False)
        return model.to(device)
    if f.get("zoo"):
        recipe = get_recipe(f["zoo"])
        if not store.has(recipe.key):
            if not train_missing:
                raise CheckpointError(
                    f"zoo model {recipe.name!r} is not in {store.root}", hint=f"run `robbench zoo train {recipe.name}`"
                )
            train_recipe(recipe, zoo_dir=zoo_dir, quiet=quiet)
        state, _manifest = store.load(recipe.key)
        model = build_model(recipe.arch, **recipe.config)
        where = str(store.paths(recipe.key)[0])
    else:
        require_checkpoint(f)
        path = Path(f["checkpoint"]).expanduser()
        fmt = f.get("format", "state_dict")
        config = dict(f.get("config") or {})
        if fmt == "diffusers":  # the folder carries its own configs; the suite's config: overrides them
            from robbench.zoo.external import diffusers_config

            config = {**diffusers_config(path), **config}
        model = build_model(f["arch"], **config)
        if fmt == "state_dict":
            state = load_state_dict(path, f.get("sha256"))
        else:
            from robbench.zoo import external

            state = external.read(fmt, path, f.get("sha256"), model)
        where = str(path)
    _load_into(model, state, where)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)


def check_checkpoint(
    arch: str,
    path: str | Path,
    *,
    fmt: str = "state_dict",
    sha256: str | None = None,
    config: str | dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Load a local checkpoint into ``arch`` as a suite would; returns its parameter count and sha256.

    Raises :class:`CheckpointError` naming the file and the problem (missing, failing its hash, not
    weights-only, wrong layout, names or shapes that do not match the architecture).
    """
    import json

    from robbench.zoo.store import sha256_file

    if isinstance(config, str):
        try:
            config = json.loads(config)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"--config is not JSON: {exc}", hint="e.g. --config '{\"depth\": 28}'") from None
        if not isinstance(config, dict):
            raise CheckpointError("--config must be a JSON object", hint="e.g. --config '{\"depth\": 28}'")
    model = load_model({"arch": arch, "checkpoint": str(path), "format": fmt, "sha256": sha256, "config": config or {}})
    return {"parameters": sum(p.numel() for p in model.parameters()), "sha256": sha256_file(Path(path).expanduser())}


def _load_into(model: nn.Module, state: Any, where: str) -> None:
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(
            f"checkpoint {where} is not a state dict (parameter names -> tensors): it holds a {type(state).__name__}",
            hint="give a file saved with torch.save(model.state_dict()), or name its format "
            "(format: ncsnv2 | score_sde | robustbench | diffusers | edm)",
        )
    own = model.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("_")}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad_shape = [
        (k, tuple(state[k].shape), tuple(own[k].shape))
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or bad_shape:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
        if bad_shape:
            k, got, want = bad_shape[0]
            parts.append(f"shape of {k}: file {got} vs model {want}")
        raise CheckpointError(
            f"checkpoint {where} does not match its architecture: {'; '.join(parts)}",
            hint="check the architecture name and config, or the checkpoint format",
        )
    model.load_state_dict(state)
