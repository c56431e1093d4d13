"""The faster L2 / L1 projection (NumPy bookkeeping, fused box step, fixed-point stop) returns what the
results-version-2 projection returned, bit for bit, so stored rows stay valid without a version bump.

``_reference_project`` is the projection as it was when the recorded results were computed (kept here
verbatim in behaviour: torch bookkeeping, 60 halvings, the soft-threshold written out)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from robbench.core.multiplier import HALVINGS, bisect_host, bisect_torch, l1_estimate
from robbench.core.threat import project


def _reference_bisect(fn: Callable[[Tensor], Tensor], target: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    for _ in range(60):
        mid = (lo + hi) / 2
        ok = fn(mid) <= target
        hi = torch.where(ok, mid, hi)
        lo = torch.where(ok, lo, mid)
    return hi


def _reference_project(x: Tensor, x0: Tensor, norm: str, eps: float) -> Tensor:
    shape, dtype = x.shape, x.dtype
    v, c = x.reshape(shape[0], -1).double(), x0.reshape(shape[0], -1).double()
    d = v - c
    lo_box, hi_box = -c, 1.0 - c
    d_box = torch.minimum(torch.maximum(d, lo_box), hi_box)
    target = torch.full((v.shape[0],), float(eps), dtype=v.dtype)
    if norm == "l2":
        feasible = d_box.norm(dim=1) <= eps

        def fn(lam: Tensor) -> Tensor:
            return torch.minimum(torch.maximum(d / (1 + lam[:, None]), lo_box), hi_box).norm(dim=1)

        hi = (d.norm(dim=1) / max(eps, 1e-300)).clamp_min(1.0)
        lam = _reference_bisect(fn, target, torch.zeros_like(hi), hi)
        z = torch.minimum(torch.maximum(d / (1 + lam[:, None]), lo_box), hi_box)
    else:
        feasible = d_box.abs().sum(dim=1) <= eps

        def soft(lam: Tensor) -> Tensor:
            s = torch.sign(d) * (d.abs() - lam[:, None]).clamp_min(0)
            return torch.minimum(torch.maximum(s, lo_box), hi_box)

        hi = d.abs().amax(dim=1)
        lam = _reference_bisect(lambda m: soft(m).abs().sum(dim=1), target, torch.zeros_like(hi), hi)
        z = soft(lam)
    z = torch.where(feasible[:, None], d_box, z)
    return (c + z).clamp(0.0, 1.0).to(dtype).reshape(shape)


def _case(seed: int, b: int, shape: tuple[int, ...], scale: float, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand((b, *shape), generator=g, dtype=torch.float64)
    x0 = torch.where(torch.rand(x0.shape, generator=g, dtype=torch.float64) < 0.2, x0.round(), x0)  # pixels at 0 / 1
    x = x0 + scale * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    x[0] = x0[0]  # one row unperturbed
    if b > 2:
        x[1] = x0[1] + 1e-7 * torch.randn(shape, generator=g, dtype=torch.float64)  # one row barely moved
    return x.to(dtype), x0.to(dtype)


@pytest.mark.parametrize("norm", ["l2", "l1"])
@pytest.mark.parametrize(("b", "shape"), [(1, (1,)), (3, (5,)), (16, (1, 8, 8)), (32, (1, 28, 28)), (4, (3, 32, 32))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_projection_is_bit_identical_to_the_recorded_one(
    norm: str, b: int, shape: tuple[int, ...], dtype: torch.dtype
) -> None:
    eps_values = (1e-6, 0.05, 0.5, 2.0, 12.0, 1e4) if norm == "l1" else (1e-6, 0.05, 0.5, 1.5, 1e4)
    for seed, scale in enumerate((1e-4, 0.01, 0.1, 0.5, 3.0)):
        x, x0 = _case(seed, b, shape, scale, dtype)
        for eps in eps_values:
            new, old = project(x, x0, norm, eps), _reference_project(x, x0, norm, eps)
            assert new.dtype == old.dtype and torch.equal(new, old), (norm, shape, dtype, scale, eps)


def test_host_bookkeeping_matches_the_torch_one() -> None:
    """The two bisections (NumPy bookkeeping with its fixed-point stop, torch without) agree bit for bit."""
    g = torch.Generator().manual_seed(3)
    d = torch.randn(64, 40, generator=g, dtype=torch.float64)
    for eps in (1e-9, 0.3, 2.0, 7.5):
        target = torch.full((64,), eps, dtype=torch.float64)
        hi = d.abs().amax(dim=1)

        def fn(lam: Tensor) -> Tensor:
            return (d.abs() - lam[:, None]).clamp_min(0).sum(dim=1)

        a = bisect_torch(fn, target, torch.zeros_like(hi), hi)
        b = bisect_host(fn, target, torch.zeros_like(hi), hi)
        assert torch.equal(a, b)


def test_projection_keeps_a_graph_through_x() -> None:
    """Callers may differentiate through ``project`` (the multiplier is a constant there)."""
    x0 = torch.rand(2, 6, dtype=torch.float64)
    x = (x0 + 0.5).requires_grad_(True)
    for norm in ("l2", "l1"):
        out = project(x, x0, norm, 0.3)
        (grad,) = torch.autograd.grad(out.sum(), x)
        assert torch.isfinite(grad).all()


def _l1_case(seed: int) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(32, 300, generator=g, dtype=torch.float64) * (torch.rand(32, 300, generator=g) < 0.1)
    room = torch.rand(32, 300, generator=g, dtype=torch.float64)
    return a, room, torch.full((32,), 1.5, dtype=torch.float64)


@pytest.mark.parametrize("wrong", [None, 1.5, 0.999999, float("nan")])
def test_an_estimate_only_saves_evaluations_never_changes_the_result(wrong: float | None) -> None:
    """A good estimate decides most halvings (far fewer evaluations); a bad or missing one is caught by the
    final check (or never used), and the result is the recorded bisection's, bit for bit."""
    a, room, target = _l1_case(4)
    calls = [0]

    def fn(lam: Tensor) -> Tensor:
        calls[0] += 1
        return torch.minimum((a - lam[:, None]).clamp_min(0), room).sum(1)

    hi = a.amax(1)
    recorded = bisect_torch(fn, target, torch.zeros_like(hi), hi)
    calls[0] = 0
    lam, margin = l1_estimate(a, room, 1.5)
    assert torch.isfinite(margin).all()
    if wrong is not None:
        lam = lam * wrong
    got = bisect_host(fn, target, torch.zeros_like(hi), hi, (lam, margin))
    assert torch.equal(got, recorded)
    if wrong is None:
        assert calls[0] < HALVINGS // 2, calls[0]
    elif wrong == 1.5:
        assert calls[0] > HALVINGS // 2, "a wrong estimate must send the batch to the plain halvings"
