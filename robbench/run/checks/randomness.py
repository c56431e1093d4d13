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
    from robbench.run.plan import Plan


def _randomness(
    defense: Defense, plan: Plan, display: str, x: torch.Tensor, ids: list[str], seed: int
) -> list[dict[str, Any]]:
    out = []
    with torch.no_grad():
        if not defense.stochastic:
            a, b = defense(x, None), defense(x, None)
            diff = float((a - b).abs().max())
            if diff > 0:
                out.append(
                    _rec(
                        "randomness",
                        "flag",
                        display,
                        f"declared deterministic, but two forwards of the same input differ (max |logit diff| {diff:.3g}): "
                        "it draws randomness outside the generator it is given",
                        max_diff=diff,
                    )
                )
            else:
                out.append(
                    _rec(
                        "randomness", "ok", display, "deterministic: identical logits for the same input", max_diff=0.0
                    )
                )
            return out
        r1 = SampleRNG.for_samples(ids, seed, "checks-randomness", 1, device=x.device)
        r2 = SampleRNG.for_samples(ids, seed, "checks-randomness", 2, device=x.device)
        a = defense(x, r1)
        r1.reset()
        a2 = defense(x, r1)
        b = defense(x, r2)
    repeat = float((a - a2).abs().max())
    spread = float((a - b).abs().max())
    if repeat > 0:
        out.append(
            _rec(
                "randomness",
                "flag",
                display,
                f"stochastic, but not repeatable with its seeds rewound (max |logit diff| {repeat:.3g}): "
                "randomness drawn outside its generator; det-randomness attacks cannot be trusted",
                max_diff=repeat,
            )
        )
    cells = [c for c in plan.cells if c.defense.display == display and c.threat is not None]
    adaptive = any(c.eot > 1 or c.randomness == "det" for c in cells)
    uses_aa_rand = any(c.attack.name == "autoattack" and c.attack.params.get("version") == "rand" for c in cells)
    if spread == 0:
        out.append(
            _rec(
                "randomness", "info", display, "declared stochastic, but two draws gave identical logits", max_diff=0.0
            )
        )
    elif cells and not (adaptive or uses_aa_rand):
        out.append(
            _rec(
                "randomness",
                "flag",
                display,
                f"randomised (two draws differ by up to {spread:.3g} in the logits) and attacked with neither EoT "
                "nor det randomness: single-draw attacks overestimate its robustness",
                max_diff=spread,
            )
        )
    elif not repeat:
        out.append(
            _rec(
                "randomness",
                "ok",
                display,
                "randomised, repeatable with fixed seeds, attacked with EoT or det",
                max_diff=spread,
            )
        )
    return out
