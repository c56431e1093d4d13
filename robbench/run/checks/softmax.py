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

import torch

from robbench.core.seeding import SampleRNG
from robbench.run.checks.records import _rec

if TYPE_CHECKING:
    from robbench.defenses.base import Defense


def _softmax(defense: Defense, display: str, x: torch.Tensor, ids: list[str], seed: int) -> dict[str, Any]:
    rng = SampleRNG.for_samples(ids, seed, "checks-softmax", device=x.device) if defense.stochastic else None
    with torch.no_grad():
        out = defense(x, rng)
    prob = bool(out.min() > -1e-5 and out.max() < 1 + 1e-5 and ((out.sum(-1) - 1).abs() < 1e-5).all())
    if prob:
        return _rec(
            "softmax-outputs",
            "flag",
            display,
            "outputs are in [0,1] and sum to 1: probabilities, not logits; attack losses saturate on them",
        )
    return _rec("softmax-outputs", "ok", display, "outputs are logits")
