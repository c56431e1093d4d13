"""All checks of a finished (or partial) run: the compute checks of each defense, then the row checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from robbench.run.checks.compute import compute_checks
from robbench.run.checks.rows import row_checks

if TYPE_CHECKING:
    from robbench.run.plan import Plan
    from robbench.run.unit import UnitRunner


def run_checks(
    plan: Plan, runner: UnitRunner, compute: bool = True, computed: dict[str, list[dict[str, Any]]] | None = None
) -> list[dict[str, Any]]:
    """Compute checks (unless ``compute`` is off; ``computed``: records the workers already made, per
    defense), then the row checks over the stored rows of the plan's cells."""
    out = compute_checks(plan, runner.components, computed=computed) if compute else []  # never raises
    df = runner.results.read_rows(cells={c.id for c in plan.cells})
    dim = int(runner.data.x[0].numel())
    out.extend(row_checks(df, plan.suite, dim, plan.dataset.num_classes))
    return out
