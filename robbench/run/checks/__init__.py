"""Checks that expose false robustness, run after a suite and recorded in the manifest's ``checks``.

Each check yields records ``{"check", "status", "subject", "message", ...numbers}`` with status
``flag`` (the evaluation is likely unreliable), ``ok``, or ``info``; ``robbench table`` lists the flags
under the table. One module per check family, one function per check:

- :mod:`.randomness` (AutoAttack's check): a defense declared deterministic that gives different logits
  for the same input twice; a stochastic one that is not repeatable with its seeds rewound; a
  randomised defense attacked with neither EoT nor ``det`` randomness.
- :mod:`.softmax` (AutoAttack's check): outputs that are probabilities, not logits.
- :mod:`.gradients` (AutoAttack's check): exactly zero input gradients, or gradients that vanish
  through the purifier (:data:`~.gradients.VANISHING_RATIO` of the classifier's alone).
- :mod:`.large_eps` (Carlini et al. 2019, Sec. 5): at a budget that contains the mid-grey image, a
  working attack drives accuracy to the largest class share.
- :mod:`.rows`: checks from the stored rows (black-box beating white-box, full vs BPDA, large eps from
  rows, loss not converged, and :mod:`.draw_trend`: a stochastic defense's worst-of-m accuracy still
  falling with its last judge draw).

Compute checks (:mod:`.compute`) use :data:`~.compute.N_SAMPLES` evaluated samples and seeds derived
from the suite seed, so a worker process computes the same records as the coordinator.
"""
