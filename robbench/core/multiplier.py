"""The Lagrange multiplier of the L2 / L1 projection onto ball ∩ box: the recorded bisection, cheaper on CPU.

The stored rows were computed with a plain float64 bisection: 60 halvings of ``[0, hi]``, keeping the
smallest ``m`` with ``fn(m) <= eps`` (``fn``: the norm of the clipped, shrunk perturbation, decreasing
in ``m``). Its result depends on every midpoint's comparison, so any other root finder would change the
last bits of stored adversarial images. :func:`bisect_host` returns the same result bit for bit: the
per-row bookkeeping runs in NumPy (on CPU the bisection is dominated by per-operation overhead on (B,)
tensors, which NumPy pays a fraction of), and it stops at a fixed point.

Tried and dropped (2026-12-07): predicting the early halvings from a closed-form multiplier (sorting the
clipping points) and verifying the predicted bracket with two evaluations. Exact, but the sort and the
NumPy walk cost 0.7-3 ms per call, more than the 20-30 evaluations they saved.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

#: halvings of the recorded bisection
HALVINGS = 60

Fn = Callable[[Tensor], Tensor]


def bisect_torch(fn: Fn, target: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """The recorded bisection with torch bookkeeping (any device)."""
    for _ in range(HALVINGS):
        mid = (lo + hi) / 2
        ok = fn(mid) <= target
        hi = torch.where(ok, mid, hi)
        lo = torch.where(ok, lo, mid)
    return hi


def bisect_host(fn: Fn, target: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """:func:`bisect_torch`'s result for CPU tensors, with the bookkeeping in NumPy.

    The same float64 midpoints and comparisons. An iteration that changes no row's bracket is a fixed
    point (the next one computes the same midpoints), so stopping there changes nothing.
    """
    t, lo_n, hi_n = target.numpy(), lo.numpy(), hi.numpy()
    for _ in range(HALVINGS):
        mid = (lo_n + hi_n) / 2
        ok = fn(torch.from_numpy(mid)).numpy() <= t
        new_hi, new_lo = np.where(ok, mid, hi_n), np.where(ok, lo_n, mid)
        if np.array_equal(new_hi, hi_n) and np.array_equal(new_lo, lo_n):
            break
        hi_n, lo_n = new_hi, new_lo
    return torch.from_numpy(hi_n)
