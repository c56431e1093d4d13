"""Checks that expose false robustness, run after a suite and recorded in ``manifest["checks"]``.

Each check yields records ``{"check", "status", "subject", "message", ...numbers}`` with status
``flag`` (the evaluation is likely unreliable), ``ok``, or ``info``. ``robbench table`` lists the
flags under the table. Compute checks use the first :data:`N_SAMPLES` evaluated samples and seeds
derived from the suite seed; row checks read the stored rows.

Compute checks (per defense):

- ``randomness`` (AutoAttack's check): a defense declared deterministic that gives different logits
  for the same input twice draws randomness outside the generator it is given (flag); a stochastic
  defense that is not repeatable with its seeds rewound cannot be evaluated with ``det`` (flag); a
  randomised defense evaluated with neither EoT nor ``det`` randomness (flag).
- ``softmax-outputs`` (AutoAttack's check): outputs in [0, 1] summing to 1 are probabilities, not
  logits; attack losses on them saturate (flag).
- ``zero-gradients`` (AutoAttack's check, per gradient mode the suite uses on the defense): the share
  of samples whose input gradient of the margin loss is exactly zero (flag when any), and the median
  ratio of its norm to the classifier-alone gradient norm (flag below :data:`VANISHING_RATIO`: the
  gradient vanishes through the purifier). The margin loss is used because cross-entropy gradients
  underflow to exact zeros on confidently classified points even without a defense.
- ``large-eps`` (Carlini et al. 2019, "On evaluating adversarial robustness", Sec. 5): at a budget
  that contains the mid-grey image around every input (Linf 0.5, L2 0.5 sqrt(d), L1 0.5 d, see
  :func:`large_eps`), an attack that works drives accuracy to at most the largest class share. If the
  suite has a threat at least that large, its rows are used (worst case over attacks); otherwise a
  20-step margin-loss PGD runs per gradient mode the suite uses. Flag when accuracy exceeds the
  largest class share among those samples plus :data:`LARGE_EPS_SLACK`.

Row checks:

- ``black-box-beats-white-box`` (AutoAttack's Square check), per gradient mode (full, bpda, custom)
  of the white-box attacks on the defense itself: samples broken by a gradient-free or transfer
  attack that every attack of that mode attacked and left robust (flag when any).
- ``full-vs-bpda``: per defense and threat where both are present, the best full-gradient accuracy
  far above the best BPDA accuracy means the exact gradient is masked (flag); the converse means BPDA's
  identity approximation misleads (flag). Threshold :data:`GAP`.
- ``loss-not-converged``: per cell with loss traces of a known loss (cross-entropy or margin), each
  point still robust at the end has its loss slope over the last fifth of the steps extrapolated over
  as many steps again; if that passes a loss value at which the point is surely misclassified
  (:func:`trace_threshold`: margin 0, cross-entropy ln K), the attack stopped too early for it (flag
  when any). A loss merely creeping up on points far from
  the boundary (cross-entropy of confident points grows exponentially as the margin shrinks) is not
  flagged: it would not change the accuracy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from robbench.core.threat import ThreatModel, max_eps
from robbench.errors import RobbenchError
from robbench.run.checks.gradients import _gradient_modes, _zero_gradients
from robbench.run.checks.large_eps import LARGE_EPS_SLACK, _large_eps_attack, large_eps
from robbench.run.checks.randomness import _randomness
from robbench.run.checks.records import not_computed
from robbench.run.checks.softmax import _softmax

if TYPE_CHECKING:
    from robbench.run.plan import Plan
    from robbench.run.unit import Executor


N_SAMPLES = 16


def checked_defenses(plan: Plan) -> list[str]:
    """The defenses (display names, suite order) the compute checks cover: those with cells in the plan."""
    return [d.display for d in plan.suite.defenses if any(c.defense.display == d.display for c in plan.cells)]


def defense_checks(plan: Plan, ex: Executor, display: str, n: int = N_SAMPLES) -> list[dict[str, Any]]:
    """The compute checks of one defense (randomness, softmax, gradients, large eps) on ``n`` samples.

    Depends only on the plan, the suite seed and the defense, not on where it runs: a worker process
    computes the same records as the coordinator. A defense that cannot be built gives one ``info``
    record saying why (its rows say so too).
    """
    data = ex.data
    n = min(n, len(data.ids))
    x = data.x[:n].to(ex.device)
    y = data.y[:n].to(ex.device)
    ids = list(data.ids[:n])
    seed = plan.suite.seed
    dim = int(x[0].numel())
    counts = np.bincount(y.cpu().numpy(), minlength=1)
    threshold = min(1.0, float(counts.max()) / n + LARGE_EPS_SLACK)
    norms = sorted({t.norm for t in plan.suite.threat_models()})
    large_threats = {t.norm: t for t in plan.suite.threat_models() if t.eps >= large_eps(t.norm, dim)}
    spec = next(d for d in plan.suite.defenses if d.display == display)
    try:
        defense = ex.defense(spec)
    except RobbenchError as exc:
        return [not_computed(display, f"skipped: {exc.message}")]
    out: list[dict[str, Any]] = []
    out.extend(_randomness(defense, plan, display, x, ids, seed))
    out.append(_softmax(defense, display, x, ids, seed))
    modes = _gradient_modes(plan, display)
    for mode in modes:
        out.append(_zero_gradients(defense, display, mode, x, y, ids, seed))
    # only the norms this defense is attacked in (a defense never attacked in L1 needs no L1 check)
    attacked = {c.threat.norm for c in plan.cells if c.defense.display == display and c.threat is not None}
    for norm in (nm for nm in norms if nm in attacked):
        if norm in large_threats:
            continue  # judged from the rows
        threat = ThreatModel(norm, min(large_eps(norm, dim), 0.999 * max_eps(norm, dim)))  # type: ignore[arg-type]
        for mode in modes:
            out.append(_large_eps_attack(defense, display, mode, threat, x, y, ids, seed, threshold))
    return out


def defense_checks_safely(plan: Plan, ex: Executor, display: str, n: int = N_SAMPLES) -> list[dict[str, Any]]:
    """:func:`defense_checks`, with a crash of the defense recorded as an ``info`` record instead of raised.

    A defense that crashes on these samples has crashed in its units too (their failure rows say
    so); the run's other checks and its manifest must not be lost to it.
    """
    try:
        return defense_checks(plan, ex, display, n)
    except Exception as exc:
        return [not_computed(display, f"failed: {type(exc).__name__}: {exc}")]


def compute_checks(
    plan: Plan, ex: Executor, n: int = N_SAMPLES, computed: dict[str, list[dict[str, Any]]] | None = None
) -> list[dict[str, Any]]:
    """The compute checks of every defense, in suite order.

    ``computed`` holds the records already computed elsewhere (a worker pool computes them beside
    the units), by defense display name; the defenses missing from it are computed here.
    """
    done = computed or {}
    out: list[dict[str, Any]] = []
    for display in checked_defenses(plan):
        out.extend(done[display] if display in done else defense_checks_safely(plan, ex, display, n))
    return out
