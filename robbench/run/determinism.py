"""The opt-in deterministic mode (``--deterministic``) and its environment switch.

Deterministic mode (``robbench run --deterministic``) calls
``torch.use_deterministic_algorithms(True)``, turns off cuDNN autotuning and sets
``CUBLAS_WORKSPACE_CONFIG`` (needed by deterministic cuBLAS), for this run only; worker processes
inherit it through ``ROBBENCH_DETERMINISTIC=1``. On the CPU robbench's kernels are deterministic
already; on a GPU, without this mode, some kernels (atomics in convolution backward, scatter)
make repeated runs differ in the last bits, which PGD can amplify into different rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

ENV_FLAG = "ROBBENCH_DETERMINISTIC"


_CUBLAS = "CUBLAS_WORKSPACE_CONFIG"


def _enable() -> None:
    import torch

    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


@contextmanager
def deterministic_mode(enabled: bool = True) -> Iterator[None]:
    """Deterministic torch algorithms for the duration of the block (restored afterwards)."""
    if not enabled:
        yield
        return
    import torch

    saved_env = {k: os.environ.get(k) for k in (ENV_FLAG, _CUBLAS)}
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    os.environ[ENV_FLAG] = "1"
    os.environ.setdefault(_CUBLAS, ":4096:8")
    try:
        _enable()
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark = saved[2]
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def apply_from_env() -> None:
    """In a worker process: enable deterministic mode when the coordinating run asked for it."""
    if os.environ.get(ENV_FLAG) == "1":
        os.environ.setdefault(_CUBLAS, ":4096:8")
        _enable()
