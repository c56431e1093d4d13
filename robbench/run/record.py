"""What a run records so that it can be rerun, and the opt-in deterministic mode.

Every results directory holds ``suite.yaml`` (the suite text as given) and ``manifest.json``,
which records the resolved suite, the suite text, package versions, the git commit (and whether
the working tree had uncommitted changes), the device, the thread count, the seeds, the sha256 of
the checkpoints of the classifier and surrogates, and a ``rerun`` command line that reproduces the
rows from the results directory alone: ``robbench run OUT/suite.yaml --out NEW_OUT``.

Deterministic mode (``robbench run --deterministic``) calls
``torch.use_deterministic_algorithms(True)``, turns off cuDNN autotuning and sets
``CUBLAS_WORKSPACE_CONFIG`` (needed by deterministic cuBLAS), for this run only; worker processes
inherit it through ``ROBBENCH_DETERMINISTIC=1``. On the CPU robbench's kernels are deterministic
already; on a GPU, without this mode, some kernels (atomics in convolution backward, scatter)
make repeated runs differ in the last bits, which PGD can amplify into different rows.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Any


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


def checkpoint_hashes(suite: Any, zoo_dir: str | None) -> dict[str, str | None]:
    """sha256 of the classifier's and surrogates' weights (zoo: from the verified zoo manifest)."""
    from robbench.zoo import ZooStore, get_recipe
    from robbench.zoo.store import sha256_file

    refs = {"classifier": suite.classifier}
    refs.update({f"surrogate:{a.id}": a.surrogate for a in suite.attacks if a.surrogate is not None})
    out: dict[str, str | None] = {}
    store = ZooStore(zoo_dir)
    for where, ref in refs.items():
        if ref is None:
            continue
        try:
            if ref.zoo:
                key = get_recipe(ref.zoo).key
                out[where] = store.manifest(key).get("sha256") if store.has(key) else None
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


def run_record(
    plan: Any,
    out: Path,
    *,
    device: str,
    deterministic: bool,
    shard_size: int,
    threads: int | None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Manifest fields that make a run reproducible beyond what :meth:`Plan.manifest` records."""
    import sys

    import torch

    return {
        **git_state(),
        "seed": plan.suite.seed,
        "deterministic": bool(deterministic),
        "shard_size": shard_size,
        "threads": threads or torch.get_num_threads(),
        "data_dir": plan.data_dir,
        "zoo_dir": plan.zoo_dir or os.environ.get("ROBBENCH_ZOO_DIR"),
        "cwd": os.getcwd(),
        "command": shlex.join(sys.argv),
        "checkpoints": checkpoint_hashes(plan.suite, plan.zoo_dir),
        "rerun": rerun_command(
            out,
            data_dir=plan.data_dir,
            zoo_dir=plan.zoo_dir,
            device=device,
            deterministic=deterministic,
            batch_size=batch_size,
            threads=threads,
        ),
    }
