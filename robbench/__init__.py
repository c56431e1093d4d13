"""robbench: honest benchmarking of adversarial defenses."""

from __future__ import annotations

__version__ = "0.1.0"

#: bump when a change alters any row's numbers, so stored rows are not reused across it
#: (it is hashed into every cell id and stamped on every shard; tests/test_golden_rows.py fails when rows
#: change and this did not). 2: AutoAttack on stochastic targets (68f03f3), every cell of a stochastic
#: defense judged on the suite's draws, adversarial-correct implies clean-correct per draw.
RESULTS_VERSION = 2

__all__ = ["RESULTS_VERSION", "__version__"]
