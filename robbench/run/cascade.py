"""AutoAttack-style cascade (``evaluation.cascade: true``): attack only the points still robust.

For each defense x threat, the suite's attacks run in suite order; an attack runs only on the samples
that every earlier attack of that group left robust. A sample an earlier attack broke gets a
*skipped* row in the later cells: ``adv_correct`` False (every draw), ``error`` None, no cost, and
``broken_by`` naming the attack id that broke it. Its clean columns, adversarial prediction and
perturbation norms are copied from the breaking row.

So, in cascade mode, an attack's accuracy in the table is the accuracy *after it and every earlier
attack of the cascade* (AutoAttack's "robust accuracy after X"), and the last attack's accuracy is
the worst case over all of them. Which points are "still robust" is decided with the suite's
``evaluation.scoring`` on the stored per-draw correctness (a point counts as broken when its score
is 0: every draw wrong for ``mean``, any draw wrong for ``worst``, draw 0 wrong for ``single``, a
lost majority for ``majority``). Rows with an ``error`` never count as breaking a point.

Identity: a cascaded cell's rows depend on the cells before it, so its id hashes their ids too;
switching the cascade on or off never mixes rows (the first attack of each group keeps its id, its
rows are the same either way). Its seeds still derive from its non-cascade id (``Cell.rng_id``), so
each sample it attacks gets exactly the row a run without the cascade gives it: the cascade's last
accuracy equals the non-cascade worst case over attacks, computed on fewer points. The cells of a group must run in suite order; the local executor
does, and a cell whose predecessors' rows are missing fails with a clear error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from robbench.core.identity import stable_hash
from robbench.core.seeding import derive_seed
from robbench.errors import RobbenchError
from robbench.results.scoring import score_draws

if TYPE_CHECKING:
    from robbench.results.store import ResultsDir
    from robbench.run.cells import Cell


def _group_key(cell: Cell) -> tuple[str, str, float] | None:
    if cell.threat is None:
        return None
    return (cell.defense.display, cell.threat.norm, float(cell.threat.eps))


class Cascade:
    """The cascade structure of a plan: for each cell, the cells that run before it on its group."""

    def __init__(self, cells: Sequence[Cell], scoring: str) -> None:
        self.scoring = scoring
        self.priors: dict[str, list[Cell]] = {}
        seen: dict[tuple[str, str, float], list[Cell]] = {}
        for cell in cells:  # suite order: defense, attack, threat
            key = _group_key(cell)
            if key is None:
                continue
            before = seen.setdefault(key, [])
            if before:
                cell.rng_id = cell.seed_key
                cell.id = stable_hash({"cell": cell.id, "cascade_after": [c.id for c in before], "scoring": scoring})
            self.priors[cell.id] = list(before)
            before.append(cell)

    def broken_by(self, results: ResultsDir, cell: Cell, sample_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """sample id -> the stored row of the earlier attack that broke it (only broken samples)."""
        priors = self.priors.get(cell.id) or []
        if not priors:
            return {}
        df = results.read_rows(cells={c.id for c in priors})
        rows: dict[tuple[str, str], dict[str, Any]] = {
            (str(r["cell"]), str(r["sample_id"])): {str(k): v for k, v in r.items()} for r in df.to_dict("records")
        }
        out: dict[str, dict[str, Any]] = {}
        for sid in sample_ids:
            for prior in priors:
                row = rows.get((prior.id, sid))
                if row is None:
                    raise RobbenchError(
                        f"cascade: cell {cell.label} needs the row of {prior.label} for sample {sid}, which is not stored",
                        hint="cascade cells run in suite order; run with the local executor, or set evaluation.cascade: false",
                    )
                if isinstance(row.get("broken_by"), str):
                    out[sid] = row
                    break
                if not isinstance(row.get("error"), str) and score_draws(row["adv_correct_draws"], self.scoring) == 0.0:
                    out[sid] = row
                    break
        return out


def skipped_row(cell: Cell, breaker: dict[str, Any], suite_seed: int) -> dict[str, Any]:
    """The row of a sample this cell skips because ``breaker`` (an earlier cell's row) broke it."""
    by = breaker["broken_by"] if isinstance(breaker.get("broken_by"), str) else breaker["attack"]
    assert cell.threat is not None
    sid = breaker["sample_id"]
    return cell.columns.row(
        sample_id=sid,
        sample_index=int(breaker["sample_index"]),
        label=int(breaker["label"]),
        seed=derive_seed(suite_seed, cell.seed_key, "attack", sid),
        clean_pred=int(breaker["clean_pred"]),
        clean_correct=bool(breaker["clean_correct"]),
        clean_correct_draws=[bool(v) for v in breaker["clean_correct_draws"]],
        adv_pred=int(breaker["adv_pred"]),
        adv_correct=False,
        adv_correct_draws=[False] * cell.draws,
        pert_norm=float(breaker["pert_norm"]),
        pert_linf=float(breaker["pert_linf"]),
        in_ball=True,
        forward_evals=0,
        backward_evals=0,
        model_evals=0.0,
        seconds=0.0,
        peak_mem_mb=None,
        loss_trace=None,
        error=None,
        broken_by=by,
    )


def split_unit(
    cascade: Cascade, results: ResultsDir, cell: Cell, indices: list[int], ids: list[str], suite_seed: int
) -> tuple[list[int], dict[int, dict[str, Any]]]:
    """Split a unit's sample positions into those to attack and the skipped rows (by position)."""
    broken = cascade.broken_by(results, cell, [ids[i] for i in indices])
    attack = [i for i in indices if ids[i] not in broken]
    skipped = {i: skipped_row(cell, broken[ids[i]], suite_seed) for i in indices if ids[i] in broken}
    return attack, skipped
