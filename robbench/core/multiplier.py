"""The Lagrange multiplier of the L2 / L1 projection onto ball ∩ box: the recorded bisection, cheaper on CPU.

The stored rows were computed with a plain float64 bisection: 60 halvings of ``[0, hi]``, keeping the
smallest ``m`` with ``fn(m) <= eps`` (``fn``: the norm of the clipped, shrunk perturbation, decreasing
in ``m``). Its result depends on every midpoint's comparison, so any other root finder would change the
last bits of stored adversarial images. :func:`bisect_host` returns the same result bit for bit: the
per-row bookkeeping runs in NumPy (on CPU the bisection is dominated by per-operation overhead on (B,)
tensors, which NumPy pays a fraction of), and it stops at a fixed point. Given an estimate ``lam`` of
the multiplier it also skips the halvings whose outcome the estimate decides:

1. A halving whose midpoint is far from ``lam`` in every row (relative :data:`MARGIN`) is decided by
   comparing the midpoint with ``lam``, without evaluating ``fn``; the others evaluate ``fn``.
2. The final bracket ``[lo, hi]`` is then checked with two real evaluations: ``fn(hi) <= eps`` and
   ``fn(lo) > eps`` (where ``lo`` moved). The computed ``fn`` is monotone (a fixed order of correctly
   rounded monotone operations), so every decision then equals the real one: midpoints kept as ``hi``
   are ``>= hi``, those kept as ``lo`` are ``<= lo``. If any row fails, the whole batch runs the plain
   halvings from the start.

The estimates (:func:`l2_estimate`, :func:`l1_estimate`) are the active-set fixed point: fix which
coordinates are clipped (and, for L1, which are zero), solve the constraint in closed form, repeat until
the set stops changing (3-8 passes of O(d) each, measured on PGD-like inputs). A sort of the clipping
points would give it in one pass but costs more than the halvings it saves (tried: 0.4-3 ms per call).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

#: halvings of the recorded bisection
HALVINGS = 60
#: the estimate decides a halving only where |midpoint - lam| > MARGIN * lam in every row
MARGIN = 1e-12
#: passes of the active-set fixed point; a row not settled by then predicts less (a wide margin)
ESTIMATE_PASSES = 12

Fn = Callable[[Tensor], Tensor]


def bisect_torch(fn: Fn, target: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """The recorded bisection with torch bookkeeping (any device)."""
    for _ in range(HALVINGS):
        mid = (lo + hi) / 2
        ok = fn(mid) <= target
        hi = torch.where(ok, mid, hi)
        lo = torch.where(ok, lo, mid)
    return hi


def _halvings(fn: Fn, t: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The halvings evaluated for real, stopping at a fixed point (nothing changes after it)."""
    for _ in range(HALVINGS):
        mid = (lo + hi) / 2
        ok = fn(torch.from_numpy(mid)).numpy() <= t
        new_hi, new_lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
        if np.array_equal(new_hi, hi) and np.array_equal(new_lo, lo):
            break
        hi, lo = new_hi, new_lo
    return hi


def _guided_halvings(
    fn: Fn, t: np.ndarray, lo: np.ndarray, hi: np.ndarray, lam: np.ndarray, margin: np.ndarray
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The halvings, each decided by ``lam`` when every row's midpoint is more than its ``margin`` from
    it, else by ``fn``. Returns the final bracket and whether ``lam`` decided any (then it needs checking).
    """
    guessed = False
    for _ in range(HALVINGS):
        mid = (lo + hi) / 2
        if (np.abs(mid - lam) > margin).all():  # NaN (no estimate) is never far
            ok, guessed = mid > lam, True
        else:
            ok = fn(torch.from_numpy(mid)).numpy() <= t
        new_hi, new_lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
        if np.array_equal(new_hi, hi) and np.array_equal(new_lo, lo):
            break  # a fixed point (a guessed one is proven so by the final check)
        hi, lo = new_hi, new_lo
    return lo, hi, guessed


def bisect_host(
    fn: Fn, target: Tensor, lo: Tensor, hi: Tensor, estimate: tuple[Tensor, Tensor] | None = None
) -> Tensor:
    """:func:`bisect_torch`'s result for CPU tensors, with the bookkeeping in NumPy.

    The same float64 midpoints and comparisons; ``estimate`` (``lam`` and how far from it a midpoint
    must be, per row) decides the halvings far from the estimate, checked at the end (module docstring).
    """
    t, lo_n, hi_n = target.numpy(), lo.numpy(), hi.numpy()
    if estimate is None:
        return torch.from_numpy(_halvings(fn, t, lo_n, hi_n))
    w_lo, w_hi, guessed = _guided_halvings(fn, t, lo_n, hi_n, estimate[0].numpy(), estimate[1].numpy())
    if guessed:
        sure = bool((fn(torch.from_numpy(w_hi)).numpy() <= t).all())
        moved = w_lo != lo_n
        if sure and moved.any():
            sure = bool((fn(torch.from_numpy(w_lo)).numpy() > t)[moved].all())
        if not sure:
            return torch.from_numpy(_halvings(fn, t, lo_n, hi_n))
    return torch.from_numpy(w_hi)


def l2_estimate(d: Tensor, room: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """``lam`` with ``||clip(d / (1 + lam))|| = eps`` (0 where already inside) and its margin (infinite
    where the clipped set has not settled).

    With ``s = 1 / (1 + lam)``, coordinate i is clipped where ``|d_i| s >= room_i`` (the box's room in
    the direction of ``d_i``); for a fixed clipped set the squared norm is ``s^2 F + C`` (``F`` the free
    coordinates' energy, ``C`` the clipped rooms'), solved for ``s``. Starting at the box-free solution
    ``s <= s*``, each pass moves ``s`` up towards ``s*`` (the model overestimates the norm beyond ``s``);
    a pass that returns the same ``s`` has found the clipped set at the solution.
    """
    d2, r2, mag = d.square(), room.square(), d.abs()
    s = eps / d.norm(dim=1).clamp_min(1e-300)
    settled = torch.zeros_like(s, dtype=torch.bool)
    for _ in range(ESTIMATE_PASSES):
        clipped = mag * s[:, None] >= room
        free_energy = torch.where(clipped, 0.0, d2).sum(1)
        rooms = torch.where(clipped, r2, 0.0).sum(1)
        new = ((eps * eps - rooms).clamp_min(0) / free_energy.clamp_min(1e-300)).sqrt()
        settled, s = new == s, new
        if bool(settled.all()):
            break
    lam = (1 / s.clamp_min(1e-300) - 1).clamp_min(0)
    return lam, torch.where(settled, MARGIN * lam, torch.full_like(lam, float("inf")))


def l1_estimate(a: Tensor, room: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """``lam`` with ``sum min(max(a - lam, 0), room) = eps`` (0 where already inside) and its margin.

    For fixed sets of clipped (``a_i - lam >= room_i``) and free (``0 < a_i - lam < room_i``) coordinates
    the sum is ``A - n lam + C`` (``A`` the free magnitudes, ``n`` their count, ``C`` the clipped rooms),
    solved for ``lam``; starting from every moved coordinate free, until a pass returns the same ``lam``
    (1-4 passes on PGD iterates). The sets can cycle, so each pass also narrows a bracket of the root
    (the sum at ``lam`` is known exactly: ``A - n lam + C``), and a step leaving it halves it instead.
    Where no coordinate is free the sum is flat; at or below ``eps`` the root is the flat part's left end
    (a kink: common, as projected iterates sit on the boundary with many pixels at 0 or 1). A row that
    has not settled gets its bracket's midpoint, with the half-width as its margin.
    """
    moved = (a > 0).sum(1).clamp_min(1)
    lam = ((torch.minimum(a, room).sum(1) - eps) / moved).clamp_min(0)
    low, high = torch.zeros_like(lam), a.amax(1)
    settled = torch.zeros_like(lam, dtype=torch.bool)
    for _ in range(ESTIMATE_PASSES):
        shifted = a - lam[:, None]
        clipped = shifted >= room
        free = (shifted > 0) & (shifted < room)
        n = free.sum(1).to(a.dtype)
        total = torch.where(free, a, 0.0).sum(1) + torch.where(clipped, room, 0.0).sum(1)
        above = total - n * lam > eps
        low, high = torch.where(above, torch.maximum(low, lam), low), torch.where(above, high, torch.minimum(high, lam))
        new = ((total - eps) / n.clamp_min(1)).clamp_min(0)
        flat = n == 0  # no free coordinate: the sum is flat here; at or below eps its left end is the root
        if bool(flat.any()):
            left_end = torch.where(a <= lam[:, None], a, 0.0).amax(1)
            new = torch.where(flat, torch.where(above, (low + high) / 2, left_end), new)
        new = torch.where((new >= low) & (new <= high), new, (low + high) / 2)
        settled, lam = new == lam, new
        if bool(settled.all()):
            break
    half = (high - low) / 2
    return torch.where(settled, lam, low + half), torch.where(settled, MARGIN * lam, half + MARGIN * high)
