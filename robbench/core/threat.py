"""Threat models: Linf, L2 and L1 balls around the clean image, intersected with [0, 1]^d.

``project`` is the exact Euclidean projection onto ``B_p(x0, eps) ∩ [0,1]^d``. For Linf the set
is a box, so clipping is exact. For L2 and L1 the projection is separable once the Lagrange
multiplier of the norm constraint is known: each coordinate is the clipped minimiser of a 1-D
convex problem, and the norm of the result decreases monotonically in the multiplier, so a
bisection in float64 finds it to machine precision (:mod:`robbench.core.multiplier`: the 60 halvings
the recorded results were computed with, bit for bit, cheaper on CPU). :func:`project_l1_ball` is the
sort-based projection onto the plain L1 ball of Duchi et al. (2008), used when the box is not active.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor

# re-exported (``x as x``: explicit for mypy); other modules import these from here
from robbench.core.budget import NORMS as NORMS
from robbench.core.budget import Norm as Norm
from robbench.core.budget import format_eps as format_eps
from robbench.core.budget import max_eps as max_eps
from robbench.core.budget import parse_eps as parse_eps
from robbench.core.multiplier import bisect_host, bisect_torch, l1_estimate, l2_estimate

#: slack allowed by :meth:`ThreatModel.contains` for float32 round-off
ATOL = 1e-5


RTOL = 1e-5


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


def norm_of(delta: Tensor, norm: str) -> Tensor:
    """Per-sample norm of a batch of perturbations, shape (B,)."""
    flat = _flat(delta)
    if norm == "linf":
        return flat.abs().amax(dim=1)
    if norm == "l2":
        return cast(Tensor, flat.norm(p=2, dim=1))
    if norm == "l1":
        return flat.abs().sum(dim=1)
    raise ValueError(f"unknown norm {norm!r}")


def project_l1_ball(v: Tensor, eps: float) -> Tensor:
    """Exact Euclidean projection of each row of ``v`` (B, d) onto the L1 ball of radius ``eps``.

    Duchi, Shalev-Shwartz, Singer, Chandra (2008), Algorithm 1: sort magnitudes, find the
    threshold, soft-threshold.
    """
    a = v.abs()
    inside = a.sum(dim=1) <= eps
    mu, _ = torch.sort(a, dim=1, descending=True)
    cssv = mu.cumsum(dim=1) - eps
    ind = torch.arange(1, v.shape[1] + 1, device=v.device, dtype=v.dtype)
    cond = mu - cssv / ind > 0
    rho = cond.to(v.dtype).cumsum(dim=1).argmax(dim=1, keepdim=True)  # last index where cond holds
    theta = cssv.gather(1, rho) / (rho + 1).to(v.dtype)
    out = torch.sign(v) * (a - theta).clamp_min(0)
    return torch.where(inside[:, None], v, out)


def _l2_multiplier(d: Tensor, lo_box: Tensor, hi_box: Tensor, target: Tensor, eps: float) -> Tensor:
    """The multiplier of the L2 constraint: ``||clip(d / (1 + lam))|| <= eps`` at the smallest ``lam``."""
    hi = (d.norm(dim=1) / max(eps, 1e-300)).clamp_min(1.0)
    if d.device.type != "cpu":
        return bisect_torch(
            lambda lam: torch.minimum(torch.maximum(d / (1 + lam[:, None]), lo_box), hi_box).norm(dim=1),
            target,
            torch.zeros_like(hi),
            hi,
        )
    buf = torch.empty_like(d)
    room = torch.where(d > 0, hi_box, -lo_box)

    def fn(lam: Tensor) -> Tensor:
        torch.div(d, torch.from_numpy(1 + lam.numpy())[:, None], out=buf)
        torch.clamp(buf, lo_box, hi_box, out=buf)  # max then min, as above (lo_box <= hi_box)
        return cast(Tensor, torch.linalg.vector_norm(buf, dim=1))  # what Tensor.norm(dim=1) calls

    return bisect_host(fn, target, torch.zeros_like(hi), hi, l2_estimate(d, room, eps))


def _l1_multiplier(d: Tensor, lo_box: Tensor, hi_box: Tensor, target: Tensor, eps: float) -> Tensor:
    """The multiplier of the L1 constraint: ``||clip(soft(d, lam))||_1 <= eps`` at the smallest ``lam``.

    ``|clip(sign(d) max(|d| - lam, 0))|`` equals ``min(max(|d| - lam, 0), room)`` with ``room`` the box's
    room in the direction of ``d`` (the box contains 0): the same values with fewer operations.
    """
    a = d.abs()
    hi = a.amax(dim=1)
    room = torch.where(d > 0, hi_box, torch.where(d < 0, -lo_box, torch.zeros_like(d)))
    buf = torch.empty_like(d)

    def fn(lam: Tensor) -> Tensor:
        torch.sub(a, lam[:, None], out=buf)
        buf.clamp_min_(0)
        torch.minimum(buf, room, out=buf)
        return buf.sum(dim=1)

    if d.device.type != "cpu":
        return bisect_torch(fn, target, torch.zeros_like(hi), hi)
    return bisect_host(fn, target, torch.zeros_like(hi), hi, l1_estimate(a, room, eps))


def project(x: Tensor, x0: Tensor, norm: str, eps: float) -> Tensor:
    """Exact Euclidean projection of ``x`` onto ``B_norm(x0, eps) ∩ [0, 1]^d`` (per sample)."""
    if norm == "linf":
        return torch.minimum(torch.maximum(x, x0 - eps), x0 + eps).clamp(0.0, 1.0)
    shape, dtype = x.shape, x.dtype
    v = _flat(x).double()
    c = _flat(x0).double()
    d = v - c
    lo_box, hi_box = -c, 1.0 - c  # box constraints on the perturbation
    d_box = torch.minimum(torch.maximum(d, lo_box), hi_box)
    target = torch.full((v.shape[0],), float(eps), dtype=v.dtype, device=v.device)
    if norm == "l2":
        feasible = d_box.norm(dim=1) <= eps
        lam = _l2_multiplier(d.detach(), lo_box.detach(), hi_box.detach(), target, eps).to(d.device)
        z = torch.minimum(torch.maximum(d / (1 + lam[:, None]), lo_box), hi_box)
    elif norm == "l1":
        feasible = d_box.abs().sum(dim=1) <= eps
        lam = _l1_multiplier(d.detach(), lo_box.detach(), hi_box.detach(), target, eps).to(d.device)
        z = torch.sign(d) * (d.abs() - lam[:, None]).clamp_min(0)
        z = torch.minimum(torch.maximum(z, lo_box), hi_box)
    else:
        raise ValueError(f"unknown norm {norm!r}")
    z = torch.where(feasible[:, None], d_box, z)
    return (c + z).clamp(0.0, 1.0).to(dtype).reshape(shape)


@dataclass(frozen=True)
class ThreatModel:
    """A perturbation budget: ``||x_adv - x||_norm <= eps`` and ``x_adv`` in [0, 1]."""

    norm: Norm
    eps: float

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not (math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"eps must be a positive finite number, got {self.eps}")

    @property
    def id(self) -> str:
        return f"{self.norm}-{format_eps(self.eps)}"

    @property
    def label(self) -> str:
        return f"{self.norm.upper() if self.norm != 'linf' else 'Linf'} {format_eps(self.eps)}"

    def project(self, x: Tensor, x0: Tensor) -> Tensor:
        return project(x, x0, self.norm, self.eps)

    def norm_of(self, x: Tensor, x0: Tensor) -> Tensor:
        return norm_of(x.float() - x0.float(), self.norm)

    def contains(self, x: Tensor, x0: Tensor) -> Tensor:
        """Per-sample membership (B,) bool: inside the ball (with float slack) and inside [0, 1]."""
        in_ball = self.norm_of(x, x0) <= self.eps * (1 + RTOL) + ATOL
        flat = _flat(x)
        in_box = (flat >= -ATOL).all(dim=1) & (flat <= 1 + ATOL).all(dim=1)
        finite = torch.isfinite(flat).all(dim=1)
        return in_ball & in_box & finite
