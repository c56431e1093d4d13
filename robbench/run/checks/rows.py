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

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from robbench.core import registry
from robbench.core.threat import ThreatModel
from robbench.results.scoring import scored
from robbench.run.checks.large_eps import LARGE_EPS_SLACK, _large_eps_record, large_eps
from robbench.run.checks.records import WHITE_BOX, _rec

if TYPE_CHECKING:
    pass


GAP = 0.10


LOSSES_WITH_THRESHOLD = ("ce", "margin")


def trace_threshold(loss: str, num_classes: int | None) -> float:
    """A loss value past which a point is surely misclassified: margin 0; cross-entropy ln K (p_y < 1/K)."""
    if loss == "margin":
        return 0.0
    return math.log(num_classes) if num_classes and num_classes > 2 else math.log(2.0)


# ---- row checks ------------------------------------------------------------------------------
def _uses_gradients(name: str) -> bool:
    try:
        return bool(registry.attacks.get(name).uses_gradients)
    except Exception:
        return True


def row_checks(
    df: pd.DataFrame, manifest: dict[str, Any], dim: int | None = None, num_classes: int | None = None
) -> list[dict[str, Any]]:
    """Checks computed from stored rows only."""
    scoring = manifest.get("suite", {}).get("evaluation", {}).get("scoring", "worst")
    if df.empty:
        return []
    s = scored(df, scoring)
    s = s[s["norm"] != "none"]
    attacks = {a["id"]: a for a in manifest.get("suite", {}).get("attacks", [])}
    out: list[dict[str, Any]] = []
    if "broken_by" not in s:
        s = s.assign(broken_by=None)
    s = s.assign(attacked=s["broken_by"].isna() & s["error"].isna())

    def kind(attack_id: str, gradient: str) -> str:
        spec = attacks.get(attack_id, {})
        if spec.get("surrogate") is not None or not _uses_gradients(spec.get("name", "")):
            return "black"
        return "white" if gradient in WHITE_BOX else "gray"

    s = s.assign(kind=[kind(a, g) for a, g in zip(s["attack"], s["gradient"], strict=True)])
    for (defense, norm, eps), g in s.groupby(["defense", "norm", "eps"], sort=False):
        threat = ThreatModel(norm, float(eps))
        subject = f"{defense} / {threat.label}"
        # black-box beating white-box, per gradient mode of the white-box attacks
        black = g[(g["kind"] == "black") & g["attacked"]]
        broken_black = set(black.loc[black["robust"] == 0, "sample_id"])
        for mode, white in g[(g["kind"] == "white") & g["attacked"]].groupby("gradient", sort=True):
            if not len(black):
                break
            white_robust = white.groupby("sample_id")["robust"].min()
            beaten = sorted(sid for sid in broken_black if white_robust.get(sid, 0) > 0)
            nums = {
                "samples": len(beaten),
                "n": int(g["sample_id"].nunique()),
                "gradient": mode,
                "norm": norm,
                "eps": float(eps),
            }
            if beaten:
                by = sorted(set(black.loc[black["sample_id"].isin(beaten) & (black["robust"] == 0), "attack"]))
                out.append(
                    _rec(
                        "black-box-beats-white-box",
                        "flag",
                        f"{subject} / gradient {mode}",
                        f"{len(beaten)} sample(s) broken by {', '.join(by)} survived every {mode}-gradient attack: "
                        "those gradients are masked or the attacks too weak",
                        **nums,
                    )
                )
            else:
                out.append(
                    _rec(
                        "black-box-beats-white-box",
                        "ok",
                        f"{subject} / gradient {mode}",
                        f"no sample broken by black-box attacks survived the {mode}-gradient attacks",
                        **nums,
                    )
                )
        # full vs BPDA
        acc = g[g["kind"] == "white"].groupby(["attack", "gradient"])["robust"].mean()
        full = [v for (a, gr), v in acc.items() if gr == "full"]
        bpda = [v for (a, gr), v in acc.items() if gr == "bpda"]
        if full and bpda:
            af, ab = float(min(full)), float(min(bpda))
            nums = {"full_accuracy": af, "bpda_accuracy": ab, "norm": norm, "eps": float(eps)}
            if af - ab >= GAP:
                out.append(
                    _rec(
                        "full-vs-bpda",
                        "flag",
                        subject,
                        f"full-gradient accuracy {100 * af:.1f}% is far above BPDA's {100 * ab:.1f}%: "
                        "the exact gradient through the purifier is masked",
                        **nums,
                    )
                )
            elif ab - af >= GAP:
                out.append(
                    _rec(
                        "full-vs-bpda",
                        "flag",
                        subject,
                        f"BPDA accuracy {100 * ab:.1f}% is far above full-gradient {100 * af:.1f}%: BPDA's identity "
                        "approximation misleads the attack; report the full-gradient number",
                        **nums,
                    )
                )
            else:
                out.append(
                    _rec(
                        "full-vs-bpda",
                        "ok",
                        subject,
                        f"full-gradient {100 * af:.1f}% and BPDA {100 * ab:.1f}% agree within {100 * GAP:.0f} points",
                        **nums,
                    )
                )
        # large eps from rows
        if dim is not None and float(eps) >= large_eps(norm, dim):
            per_sample = g[g["error"].isna()].groupby("sample_id")["robust"].min()
            labels = g.groupby("sample_id")["label"].first()
            threshold = min(1.0, float(labels.value_counts().max()) / max(len(labels), 1) + LARGE_EPS_SLACK)
            out.append(
                _large_eps_record(
                    str(defense),
                    "worst case over the suite's attacks",
                    threat,
                    float(per_sample.mean()) if len(per_sample) else float("nan"),
                    threshold,
                    len(per_sample),
                    "rows",
                )
            )
    # loss curves: extrapolate each still-robust point's late slope over as many steps again
    for _cell, g in s.groupby("cell", sort=False):
        first = g.iloc[0]
        spec = attacks.get(first["attack"], {})
        params = spec.get("params") or {}
        loss = params.get("loss", "ce" if first["attack_name"] == "pgd" else None)
        if loss not in LOSSES_WITH_THRESHOLD:
            continue  # a trace whose success threshold is unknown
        traces = [
            np.asarray(t, dtype=float)
            for t, r in zip(g["loss_trace"], g["robust"], strict=True)
            if t is not None and len(t) > 0 and r > 0
        ]
        if not traces:
            continue
        steps, restarts = params.get("steps"), params.get("restarts", 1)
        length = min(len(t) for t in traces)
        traces = [t[-length:] for t in traces]
        if isinstance(steps, int) and isinstance(restarts, int) and restarts > 1 and length == steps * restarts:
            traces = [t[-steps:] for t in traces]
            length = steps
        if length < 5:
            continue
        stack = np.stack(traces)
        w = max(1, length // 5)
        slope = (stack[:, -w:].mean(1) - stack[:, -2 * w : -w].mean(1)) / w
        projected = stack[:, -1] + np.maximum(slope, 0) * length
        threshold = trace_threshold(loss, num_classes)
        rising = int(((slope > 0) & (projected >= threshold)).sum())
        subject = f"{first['defense']} / {first['attack']} / {ThreatModel(first['norm'], float(first['eps'])).label}"
        nums = {"rising": rising, "robust_rows": len(traces), "steps": length, "loss": loss}
        if rising:
            out.append(
                _rec(
                    "loss-not-converged",
                    "flag",
                    subject,
                    f"{rising} of {len(traces)} still-robust point(s) have a {loss} loss still rising fast enough to "
                    f"cross the misclassification threshold within {length} more steps: more steps would likely "
                    "lower the accuracy",
                    **nums,
                )
            )
        else:
            out.append(
                _rec(
                    "loss-not-converged",
                    "ok",
                    subject,
                    "no still-robust point's loss is on course to cross the misclassification threshold",
                    **nums,
                )
            )
    return out
