"""Threat models: parsing budgets, and the exact projection onto ball ∩ [0,1] for every norm."""

from __future__ import annotations

import math

import pytest
import torch

from robbench.core.threat import ThreatModel, norm_of, parse_eps, project, project_l1_ball

NORMS = ["linf", "l2", "l1"]
EPS = {"linf": 0.1, "l2": 0.8, "l1": 3.0}


def _batch(seed: int, n: int = 16, shape=(1, 6, 6)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(n, *shape, generator=g)
    x = x0 + torch.randn(n, *shape, generator=g) * 0.5
    return x, x0


def test_parse_eps() -> None:
    assert parse_eps("8/255") == pytest.approx(8 / 255)
    assert parse_eps(0.5) == 0.5
    assert parse_eps("12") == 12.0
    for bad in ("eight", "1/0", True):
        with pytest.raises(ValueError):
            parse_eps(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("norm", NORMS)
def test_projection_inside_and_idempotent(norm: str) -> None:
    x, x0 = _batch(0)
    t = ThreatModel(norm, EPS[norm])  # type: ignore[arg-type]
    p = t.project(x, x0)
    assert bool(t.contains(p, x0).all())
    assert float(norm_of(p - x0, norm).max()) <= EPS[norm] * (1 + 1e-5) + 1e-6
    assert float(p.min()) >= 0 and float(p.max()) <= 1
    assert torch.allclose(t.project(p, x0), p, atol=1e-6)


@pytest.mark.parametrize("norm", NORMS)
def test_projection_is_nearest_point(norm: str) -> None:
    """No feasible point is closer to x than its projection (random feasible candidates)."""
    x, x0 = _batch(1, n=8)
    t = ThreatModel(norm, EPS[norm])  # type: ignore[arg-type]
    p = t.project(x, x0)
    dist = (p - x).flatten(1).norm(dim=1)
    g = torch.Generator().manual_seed(2)
    for _ in range(200):
        cand = t.project(p + torch.randn(p.shape, generator=g) * 0.05, x0)
        assert bool(((cand - x).flatten(1).norm(dim=1) >= dist - 1e-5).all())


@pytest.mark.parametrize("norm", NORMS)
def test_projection_variational_inequality(norm: str) -> None:
    """Characterisation of the Euclidean projection onto a convex set C: <x - p, c - p> <= 0 for all c in C."""
    x, x0 = _batch(3, n=8)
    t = ThreatModel(norm, EPS[norm])  # type: ignore[arg-type]
    p = t.project(x, x0).double()
    g = torch.Generator().manual_seed(4)
    for _ in range(100):
        c = t.project(x0 + torch.randn(x0.shape, generator=g), x0).double()
        inner = ((x.double() - p) * (c - p)).flatten(1).sum(1)
        assert bool((inner <= 1e-5).all())


def test_l1_ball_duchi_matches_bisection_when_box_inactive() -> None:
    g = torch.Generator().manual_seed(5)
    v = torch.randn(10, 50, generator=g, dtype=torch.float64) * 0.01
    x0 = torch.full((10, 50), 0.5, dtype=torch.float64)
    eps = 0.05
    duchi = project_l1_ball(v, eps)
    assert torch.allclose(duchi.abs().sum(1), torch.full((10,), eps, dtype=torch.float64))
    box = project(x0 + v, x0, "l1", eps) - x0
    assert torch.allclose(duchi, box, atol=1e-9)


def test_inside_points_are_unchanged() -> None:
    x0 = torch.full((2, 1, 4, 4), 0.5)
    x = x0 + 0.01
    for norm in NORMS:
        assert torch.allclose(project(x, x0, norm, 10.0), x)


def test_threat_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        ThreatModel("l3", 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ThreatModel("linf", -1.0)
    with pytest.raises(ValueError):
        ThreatModel("linf", math.inf)
