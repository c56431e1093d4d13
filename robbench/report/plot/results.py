"""All figures of a results directory at once (``robbench plot``).

Kinds:

* ``eps``: robust accuracy vs budget, one panel per norm, one colour per defense; clean accuracy at
  eps = 0; with several attacks per defense, the per-sample worst case is the thick line and each
  attack a thin dashed one; shaded: 95% Wilson CI.
* ``tradeoff``: for each defense that appears with several settings of one parameter (PurSAMERE at
  three eps_pur values, read from the manifest's suite), clean and robust accuracy over that
  parameter, and robust vs clean accuracy as a curve (the papers' trade-off).
* ``trace``: the attack's loss vs iteration (rows' ``loss_trace``, median over samples with the
  inter-quartile band), one panel per threat. The runner records the loss per iteration, not the
  accuracy, so only the loss is drawn.

Every figure is written atomically (a complete PNG or none).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from robbench.errors import RobbenchError
from robbench.report.plot.common import KINDS, PlotResult, _mpl, _slug
from robbench.report.plot.eps import plot_eps
from robbench.report.plot.trace import plot_trace
from robbench.report.plot.tradeoff import plot_tradeoff, tradeoff_groups
from robbench.report.summary import summarize
from robbench.results.load import load_results


# ---- entry point ---------------------------------------------------------------------------------
def plot_results(
    results_dir: str | Path,
    *,
    out: str | Path | None = None,
    kinds: Sequence[str] = ("all",),
    scoring: str | None = None,
) -> PlotResult:
    """Draw the requested kinds (``eps``, ``tradeoff``, ``trace`` or ``all``) into ``out``
    (default ``RESULTS/plots``). A kind asked for by name that has nothing to draw is an error;
    with ``all`` it is skipped and listed in :attr:`PlotResult.skipped`."""
    wanted = list(KINDS) if "all" in kinds else list(dict.fromkeys(kinds))
    bad = [k for k in wanted if k not in KINDS]
    if bad:
        raise RobbenchError(f"unknown plot kind(s) {bad}", hint=f"use {', '.join(KINDS)} or all")
    _mpl()
    loaded = load_results(results_dir)
    summary = summarize(loaded.rows, loaded.manifest, scoring=scoring, reported_only=False)
    folder = Path(out) if out is not None else loaded.path / "plots"
    title = loaded.suite_name
    res = PlotResult()
    reasons: dict[str, str] = {}
    if "eps" in wanted:
        p = plot_eps(summary, folder / "robust_vs_eps.png", title)
        if p:
            res.paths.append(p)
        else:
            reasons["eps"] = "no attacked cells (only clean)"
    if "tradeoff" in wanted:
        groups, why = tradeoff_groups(loaded.manifest.suite.defenses)
        made = [
            plot_tradeoff(summary, g, folder / f"tradeoff_{_slug(g.name)}_{_slug(g.param)}.png", title) for g in groups
        ]
        res.paths += [p for p in made if p]
        if not any(made):
            reasons["tradeoff"] = (
                "no defense appears with several settings of one parameter (e.g. pursamere at "
                "three eps_pur values)" + (f"; {'; '.join(why)}" if why else "")
            )
    if "trace" in wanted:
        p = plot_trace(loaded.rows, folder / "loss_trace.png", title, cells=[c.id for c in loaded.manifest.cells])
        if p:
            res.paths.append(p)
        else:
            reasons["trace"] = "no row recorded a loss trace (the attacks keep none)"
    res.skipped = [f"{k}: {v}" for k, v in reasons.items()]
    if reasons and "all" not in kinds:
        raise RobbenchError(
            f"nothing to draw for {', '.join(reasons)}: {'; '.join(reasons.values())}",
            hint="choose another --kind, or run a suite that has what this plot shows",
        )
    if not res.paths:
        raise RobbenchError(f"nothing to draw for {loaded.path}: {'; '.join(res.skipped)}")
    return res
