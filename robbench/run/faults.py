"""Per-row fault flags: what a row's ``error`` says, and what a run reports about them.

The runner checks every sample (see :mod:`robbench.run.unit`) and writes one of these into the row's
``error`` column; a flagged row never counts as robust:

``containment: ...``
    the attack returned a finite image outside its threat ball or outside [0, 1]. That is a bug
    in the attack (its numbers would be cheating): the run *fails* (exit code 3).
``non-finite image: ...``
    the attack returned a NaN/inf image although the defense's logits on the clean input were
    finite: an attack bug as well, the run fails.
``non-finite logits: ...``
    the defense (purifier or model) returned NaN/inf logits on the clean or the adversarial input
    (or its NaN gradients made the attack's image NaN): a property of the defense, reported with
    the defense named; the run continues and ends normally, with a warning.

:func:`fault_report` turns the stored rows of a run's cells into those failure and warning lines,
so a resumed run reports faults of rows stored by an earlier, interrupted run too.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

CONTAINMENT = "containment:"


NONFINITE_IMAGE = "non-finite image:"


NONFINITE_LOGITS = "non-finite logits:"


#: row errors that fail a run (exit code 3)
FAILING = (CONTAINMENT, NONFINITE_IMAGE)


#: row errors that are reported as warnings
WARNING = (NONFINITE_LOGITS,)


def row_error(
    *,
    attack: str,
    defense: str,
    threat: str | None,
    image_finite: bool,
    in_ball: bool,
    clean_logits_finite: bool,
    adv_logits_finite: bool,
    norm: float,
) -> str | None:
    """The ``error`` of one row, or ``None`` for a sound row. ``threat`` is the threat label (None: clean)."""
    if not image_finite:
        if not clean_logits_finite:
            return (
                f"{NONFINITE_LOGITS} defense {defense} returned NaN/inf logits (and attack {attack}'s image "
                f"became NaN/inf through them)"
            )
        return f"{NONFINITE_IMAGE} attack {attack} returned a NaN/inf image against defense {defense}"
    if not in_ball:
        where = threat if threat is not None else "the clean input (a threat-free attack must not perturb)"
        return f"{CONTAINMENT} attack {attack} returned an image outside {where} or [0,1] (norm {norm:.6g})"
    if not (clean_logits_finite and adv_logits_finite):
        which = "clean" if not clean_logits_finite else "adversarial"
        return f"{NONFINITE_LOGITS} defense {defense} returned NaN/inf logits on the {which} input"
    return None


def fault_report(rows: pd.DataFrame, labels: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(failures, warnings): one line per cell with flagged rows, for the cells in ``labels`` (id -> label)."""
    failures: list[str] = []
    warnings: list[str] = []
    if rows.empty or "error" not in rows:
        return failures, warnings
    flagged = rows[rows["cell"].isin(list(labels)) & rows["error"].notna()]
    for cell, g in flagged.groupby("cell", sort=False):
        n_cell = int((rows["cell"] == cell).sum())
        first = g.iloc[0]
        errors = g["error"].astype(str)
        bad = errors.str.startswith(FAILING)
        warn = errors.str.startswith(WARNING)
        if bad.any():
            kinds = sorted({e.split(":", 1)[0] for e in errors[bad]})
            failures.append(
                f"{labels[str(cell)]}: attack {first['attack']!r} ({first['attack_name']}) returned images outside its "
                f"threat ball or [0,1] or non-finite ({', '.join(kinds)}) for {int(bad.sum())} of {n_cell} samples; "
                f"those rows are flagged and count as not robust. The attack is buggy: fix it, then rerun with --fresh"
            )
        if warn.any():
            warnings.append(
                f"{labels[str(cell)]}: defense {first['defense']!r} ({first['defense_name']}) returned NaN/inf logits for "
                f"{int(warn.sum())} of {n_cell} samples; those rows are flagged (error column) and count as not correct"
            )
    return failures, warnings
