"""What a run records so that it can be rerun: the manifest's machine, software, seeds and commands.

Every results directory holds ``suite.yaml`` (the suite text as given) and ``manifest.json``, which
records the resolved suite, the suite text, package versions, the git commit (and whether the
working tree had uncommitted changes), the device, the thread count, the seeds, the sha256 of the
checkpoints of the classifier and surrogates, and a ``rerun`` command line that reproduces the rows
from the results directory alone: ``robbench run OUT/suite.yaml --out NEW_OUT``.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from robbench.results.manifest import CellRecord, Manifest

if TYPE_CHECKING:
    from robbench.run.plan import Plan


def git_state() -> dict[str, Any]:
    """The commit of the robbench source and whether its working tree has uncommitted changes."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    if not sha:
        return {"git_sha": None, "git_dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no", "--", str(here))
    return {"git_sha": sha.strip(), "git_dirty": None if status is None else bool(status.strip())}


@functools.cache
def code_stamp() -> dict[str, Any]:
    """The code that produces rows in this process, stamped on every shard it writes."""
    from robbench import RESULTS_VERSION, __version__

    return {"robbench": __version__, "results_version": RESULTS_VERSION, **git_state()}


def checkpoint_hashes(suite: Any, zoo_dir: str | None) -> dict[str, str | None]:
    """sha256 of the classifier's and surrogates' weights (zoo: from the verified zoo manifest)."""
    from robbench.zoo import ZooStore, get_recipe
    from robbench.zoo.store import sha256_file

    refs = {"classifier": suite.classifier}
    refs.update({f"surrogate:{a.id}": a.surrogate for a in suite.attacks if a.surrogate is not None})
    refs.update({f"classifier:{d.display}": d.classifier for d in suite.defenses if d.classifier is not None})
    out: dict[str, str | None] = {}
    store = ZooStore(zoo_dir)
    for where, ref in refs.items():
        if ref is None:
            continue
        try:
            if ref.zoo:
                key = get_recipe(ref.zoo).key
                out[where] = store.manifest(key).get("sha256") if store.has(key) else None
            elif ref.robustbench is not None:
                from robbench.zoo.robustbench_zoo import model_path

                out[where] = ref.sha256 or sha256_file(model_path(ref.robustbench))
            else:
                out[where] = ref.sha256 or sha256_file(Path(ref.checkpoint).expanduser())
        except Exception:
            out[where] = None
    return out


def rerun_command(
    out: Path,
    *,
    data_dir: str | None,
    zoo_dir: str | None,
    device: str,
    deterministic: bool,
    batch_size: int | None = None,
    threads: int | None = None,
) -> str:
    """The command that recomputes these rows from the results directory alone.

    Batch size and threads do not change rows beyond float round-off in the diagnostic columns
    (BLAS kernels block by batch); they are repeated so that a rerun matches bit for bit.
    """
    args = ["robbench", "run", str(out / "suite.yaml"), "--out", "NEW_OUT"]
    if batch_size:
        args += ["--batch-size", str(batch_size)]
    if threads:
        args += ["--threads", str(threads)]
    if data_dir:
        args += ["--data-dir", str(Path(data_dir).expanduser().resolve())]
    if zoo_dir:
        args += ["--zoo-dir", str(Path(zoo_dir).expanduser().resolve())]
    if device not in ("auto", "cpu"):
        args += ["--device", device]
    if deterministic:
        args.append("--deterministic")
    return shlex.join(args)


PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "pydantic",
    "typer",
    "rich",
    "scikit-learn",
    "pyautoattack",
    "submitit",
    "torchattacks",
    "matplotlib",
)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def environment() -> dict[str, Any]:
    import torch

    from robbench import RESULTS_VERSION, __version__

    return {
        "robbench": __version__,
        "results_version": RESULTS_VERSION,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": package_versions(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


def start_manifest(
    plan: Plan,
    out: Path,
    *,
    device: torch.device,
    device_requested: str,
    batch_size: int,
    deterministic: bool,
    shard_size: int,
    threads: int | None,
) -> Manifest:
    """The manifest a run writes before its first unit: the resolved suite and cells, the machine and
    software, the seeds, and the command that reproduces the rows."""
    return Manifest(
        suite_name=plan.suite.name,
        suite=plan.suite,
        suite_text=plan.suite_text,
        cells=[CellRecord.model_validate(c.describe()) for c in plan.cells],
        n_samples=len(plan.sample_positions),
        classifier=plan.classifier_identity,
        environment=environment(),
        device=str(device),
        batch_size=batch_size,
        out=str(out),
        notes=list(plan.notes),
        status="running",
        started=datetime.now(UTC).isoformat(),
        **git_state(),
        seed=plan.suite.seed,
        deterministic=bool(deterministic),
        shard_size=shard_size,
        threads=threads or torch.get_num_threads(),
        data_dir=plan.data_dir,
        zoo_dir=plan.zoo_dir or os.environ.get("ROBBENCH_ZOO_DIR"),
        cwd=os.getcwd(),
        command=shlex.join(sys.argv),
        checkpoints=checkpoint_hashes(plan.suite, plan.zoo_dir),
        rerun=rerun_command(
            out,
            data_dir=plan.data_dir,
            zoo_dir=plan.zoo_dir,
            device=device_requested,
            deterministic=deterministic,
            batch_size=batch_size,
            threads=threads,
        ),
    )
