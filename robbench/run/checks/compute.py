"""The compute checks of one defense on a few samples (randomness, softmax, gradients, large eps)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from robbench.core.budget import max_eps
from robbench.core.threat import ThreatModel
from robbench.errors import RobbenchError
from robbench.run.checks.gradients import gradient_modes, zero_gradient_check
from robbench.run.checks.large_eps import LARGE_EPS_SLACK, large_eps, large_eps_attack_check, one_class_record
from robbench.run.checks.randomness import randomness_checks
from robbench.run.checks.records import not_computed
from robbench.run.checks.softmax import softmax_check

if TYPE_CHECKING:
    from robbench.run.components import RunComponents
    from robbench.run.plan import Plan


N_SAMPLES = 16


def checked_defenses(plan: Plan) -> list[str]:
    """The defenses (display names, suite order) the compute checks cover: those with cells in the plan."""
    return [d.display for d in plan.suite.defenses if any(c.defense.display == d.display for c in plan.cells)]


def balanced_positions(y: torch.Tensor, n: int) -> list[int]:
    """``n`` positions of ``y`` drawn class by class in turn (each class in suite order), so a
    class-sorted sample still gives every class a share; deterministic."""
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(y.tolist()):
        by_class.setdefault(int(label), []).append(i)
    queues = list(by_class.values())
    out: list[int] = []
    while len(out) < min(n, len(y)):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return sorted(out)


def defense_checks(plan: Plan, comps: RunComponents, display: str, n: int = N_SAMPLES) -> list[dict[str, Any]]:
    """The compute checks of one defense (randomness, softmax, gradients, large eps) on ``n`` samples.

    Depends only on the plan, the suite seed and the defense, not on where it runs: a worker process
    computes the same records as the coordinator. A defense that cannot be built gives one ``info``
    record saying why (its rows say so too).
    """
    data = comps.data
    pos = balanced_positions(data.y, n)  # class-balanced: a one-class sample proves nothing at large eps
    n = len(pos)
    x = data.x[pos].to(comps.device)
    y = data.y[pos].to(comps.device)
    ids = [data.ids[i] for i in pos]
    seed = plan.suite.seed
    dim = int(x[0].numel())
    counts = np.bincount(y.cpu().numpy(), minlength=1)
    threshold = min(1.0, float(counts.max()) / n + LARGE_EPS_SLACK)
    norms = sorted({t.norm for t in plan.suite.threat_models()})
    large_threats = {t.norm: t for t in plan.suite.threat_models() if t.eps >= large_eps(t.norm, dim)}
    spec = next(d for d in plan.suite.defenses if d.display == display)
    try:
        defense = comps.defense(spec)
    except RobbenchError as exc:
        return [not_computed(display, f"skipped: {exc.message}")]
    out: list[dict[str, Any]] = []
    out.extend(randomness_checks(defense, plan, display, x, ids, seed))
    out.append(softmax_check(defense, display, x, ids, seed))
    modes = gradient_modes(plan, display)
    for mode in modes:
        out.append(zero_gradient_check(defense, display, mode, x, y, ids, seed))
    # only the norms this defense is attacked in (a defense never attacked in L1 needs no L1 check)
    attacked = {c.threat.norm for c in plan.cells if c.defense.display == display and c.threat is not None}
    for norm in (nm for nm in norms if nm in attacked):
        if norm in large_threats:
            continue  # judged from the rows
        threat = ThreatModel(norm, min(large_eps(norm, dim), 0.999 * max_eps(norm, dim)))
        if threshold >= 1.0:
            out.append(one_class_record(display, threat, n))
            continue
        for mode in modes:
            out.append(large_eps_attack_check(defense, display, mode, threat, x, y, ids, seed, threshold))
    return out


def defense_checks_safely(plan: Plan, comps: RunComponents, display: str, n: int = N_SAMPLES) -> list[dict[str, Any]]:
    """:func:`defense_checks`, with a crash of the defense recorded as an ``info`` record instead of raised.

    A defense that crashes on these samples has crashed in its units too (their failure rows say
    so); the run's other checks and its manifest must not be lost to it.
    """
    try:
        return defense_checks(plan, comps, display, n)
    except Exception as exc:
        return [not_computed(display, f"failed: {type(exc).__name__}: {exc}")]


def compute_checks(
    plan: Plan, comps: RunComponents, n: int = N_SAMPLES, computed: dict[str, list[dict[str, Any]]] | None = None
) -> list[dict[str, Any]]:
    """The compute checks of every defense, in suite order.

    ``computed`` holds the records already computed elsewhere (a worker pool computes them beside
    the units), by defense display name; the defenses missing from it are computed here.
    """
    done = computed or {}
    out: list[dict[str, Any]] = []
    for display in checked_defenses(plan):
        out.extend(done[display] if display in done else defense_checks_safely(plan, comps, display, n))
    return out
