"""Running attacks from third-party libraries (pyautoattack, torchattacks) on a robbench target.

Those libraries draw their random numbers from torch's *global* generator (pyautoattack seeds it
itself with ``torch.random.manual_seed(seed)``; torchattacks never seeds). robbench never touches the
global generator otherwise, so a library call runs inside :func:`isolated_global_rng`: the global state
is forked, seeded from the suite-derived per-sample seed, and restored on exit. Nothing outside the
call sees a change, and the call's draws depend only on the suite seed, the cell and the sample.

Batching (the ``batching`` parameter of these attacks):

- ``sample`` (default): one library call per sample, seeded with that sample's own seed, on
  ``Target.select([i])``. Rows do not depend on the batch size, a stochastic defense uses the sample's
  own streams (``det`` is exactly the judge's draw), and forward/backward counts are per sample.
- ``batch``: one call per batch, seeded by :func:`batch_seed` of the batch's sample seeds. Faster on a
  GPU, but the library's draws (random starts, Square's squares) depend on which samples share the
  batch, so rows change with ``--batch-size``; forward/backward counts are per batch call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from robbench.attacks.target import Target
from robbench.core.seeding import SampleRNG, derive_seed
from robbench.core.threat import ThreatModel

#: robbench norm name -> the spelling of pyautoattack / torchattacks
LIBRARY_NORMS = {"linf": "Linf", "l2": "L2", "l1": "L1"}

#: a library call on a (sub-)target: (target, x, y, seed) -> adversarial x
LibraryCall = Callable[[Target, Tensor, Tensor, int], Tensor]


def batch_seed(seeds: list[int]) -> int:
    """The seed of one ``batching: batch`` library call over samples with these per-sample seeds."""
    return derive_seed("third-party-batch", *seeds)


@contextmanager
def isolated_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generator (CPU and ``device``) for a library call; restore it afterwards."""
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    with torch.random.fork_rng(devices=devices):
        torch.random.manual_seed(int(seed))
        yield


@contextmanager
def captured_log(name: str, sink: list[str]) -> Iterator[None]:
    """Collect a library logger's warnings into ``sink`` instead of printing them on stderr."""

    class _Sink(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                msg = record.getMessage()
                if msg not in sink:
                    sink.append(msg)

    logger = logging.getLogger(name)
    handler = _Sink()
    old_propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = old_propagate


def run_library(
    call: LibraryCall, target: Target, x: Tensor, y: Tensor, threat: ThreatModel, rng: SampleRNG, batching: str
) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
    """Run ``call`` per sample or per batch; returns x_adv and per-sample (forwards, backwards, model evals).

    Images the library returns outside the threat ball or [0, 1] (beyond the runner's float slack) are
    projected onto it: unbounded attacks (CW, DeepFool, EAD) are thereby held to the budget, and
    round-off of bounded ones cannot fail a row. The runner then judges the result with the real defense.
    """
    b = x.shape[0]
    defense = target.defense
    if batching == "sample":
        outs, fwd, bwd, mev = [], [], [], []
        for i in range(b):
            sub = target.select([i])
            e0 = defense.evals
            with isolated_global_rng(rng.seeds[i], x.device):
                outs.append(call(sub, x[i : i + 1], y[i : i + 1], rng.seeds[i]).detach())
            fwd.append(sub.forwards)
            bwd.append(sub.backwards)
            mev.append(defense.evals - e0)
        x_adv = torch.cat(outs)
        forwards, backwards, model_evals = torch.tensor(fwd), torch.tensor(bwd), torch.tensor(mev, dtype=torch.float64)
    elif batching == "batch":
        f0, b0, e0 = target.forwards, target.backwards, defense.evals
        seed = batch_seed(rng.seeds)
        with isolated_global_rng(seed, x.device):
            x_adv = call(target, x, y, seed).detach()
        forwards = torch.full((b,), target.forwards - f0)
        backwards = torch.full((b,), target.backwards - b0)
        model_evals = torch.full((b,), (defense.evals - e0) / b, dtype=torch.float64)
    else:
        raise ValueError(f"unknown batching {batching!r}; use 'sample' or 'batch'")
    x_adv = x_adv.to(device=x.device, dtype=x.dtype)
    outside = ~threat.contains(x_adv, x)
    if bool(outside.any()):
        x_adv = torch.where(outside.view(-1, *[1] * (x.ndim - 1)), threat.project(x_adv, x), x_adv)
    return x_adv, (forwards, backwards, model_evals)
