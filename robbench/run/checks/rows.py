"""Checks computed from the stored rows alone, one function per check.

- ``black-box-beats-white-box`` (AutoAttack's Square check), per gradient mode (full, bpda, custom) of
  the white-box attacks on the defense itself: samples broken by a gradient-free or transfer attack
  that every attack of that mode attacked and left robust (flag when any).
- ``full-vs-bpda``: per defense and threat where both are present, the best full-gradient accuracy far
  above the best BPDA accuracy means the exact gradient is masked (flag); the converse means BPDA's
  identity approximation misleads (flag). Threshold :data:`GAP`.
- ``large-eps`` from rows: a suite threat at least as large as :func:`~.large_eps.large_eps` judged on
  the worst case over the suite's attacks.
- ``loss-not-converged``: per cell with loss traces of a known loss (cross-entropy or margin), each
  point still robust at the end has its loss slope over the last fifth of the steps extrapolated over
  as many steps again; if that passes a loss value at which the point is surely misclassified
  (:func:`trace_threshold`: margin 0, cross-entropy ln K), the attack stopped too early for it (flag
  when any). A loss merely creeping up on points far from the boundary is not flagged: it would not
  change the accuracy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from robbench.core import registry
from robbench.core.threat import ThreatModel
from robbench.results.scoring import scored
from robbench.run.checks.draw_trend import draws_trend_check
from robbench.run.checks.draws import adaptive_attack_check, early_stop_check, judge_draws_check
from robbench.run.checks.large_eps import LARGE_EPS_SLACK, large_eps, large_eps_record, one_class_record
from robbench.run.checks.records import WHITE_BOX, record
from robbench.suite.model import AttackSpec, Suite

GAP = 0.10
LOSSES_WITH_THRESHOLD = ("ce", "margin")
Record = dict[str, Any]


def trace_threshold(loss: str, num_classes: int | None) -> float:
    """A loss value past which a point is surely misclassified: margin 0; cross-entropy ln K (p_y < 1/K)."""
    if loss == "margin":
        return 0.0
    return math.log(num_classes) if num_classes and num_classes > 2 else math.log(2.0)


def uses_gradients(name: str) -> bool:
    try:
        return bool(registry.attacks.get(name).uses_gradients)
    except Exception:  # an attack no longer installed: treat as white-box unknown
        return True


def attack_kind(spec: AttackSpec | None, gradient: str) -> str:
    """black (gradient-free or transfer), white (gradients through the defense) or gray (classifier)."""
    if spec is not None and (spec.surrogate is not None or not uses_gradients(spec.name)):
        return "black"
    return "white" if gradient in WHITE_BOX else "gray"


def black_box_vs_white_box(g: pd.DataFrame, subject: str, norm: str, eps: float) -> list[Record]:
    black = g[(g["kind"] == "black") & g["attacked"]]
    if not len(black):
        return []
    broken_black = set(black.loc[black["robust"] == 0, "sample_id"])
    out = []
    for mode, white in g[(g["kind"] == "white") & g["attacked"]].groupby("gradient", sort=True):
        white_robust = white.groupby("sample_id")["robust"].min()
        beaten = sorted(sid for sid in broken_black if white_robust.get(sid, 0) > 0)
        nums = {"samples": len(beaten), "n": int(g["sample_id"].nunique()), "gradient": mode, "norm": norm, "eps": eps}
        where = f"{subject} / gradient {mode}"
        if beaten:
            by = sorted(set(black.loc[black["sample_id"].isin(beaten) & (black["robust"] == 0), "attack"]))
            out.append(
                record(
                    "black-box-beats-white-box",
                    "flag",
                    where,
                    f"{len(beaten)} sample(s) broken by {', '.join(by)} survived every {mode}-gradient "
                    "attack: those gradients are masked or the attacks too weak",
                    **nums,
                )
            )
        else:
            out.append(
                record(
                    "black-box-beats-white-box",
                    "ok",
                    where,
                    f"no sample broken by black-box attacks survived the {mode}-gradient attacks",
                    **nums,
                )
            )
    return out


def full_vs_bpda(g: pd.DataFrame, subject: str, norm: str, eps: float) -> list[Record]:
    acc = g[g["kind"] == "white"].groupby(["attack", "gradient"])["robust"].mean()
    full = [v for key, v in acc.items() if key[1] == "full"]  # type: ignore[index]
    bpda = [v for key, v in acc.items() if key[1] == "bpda"]  # type: ignore[index]
    if not (full and bpda):
        return []
    af, ab = float(min(full)), float(min(bpda))
    nums = {"full_accuracy": af, "bpda_accuracy": ab, "norm": norm, "eps": eps}
    if af - ab >= GAP:
        return [
            record(
                "full-vs-bpda",
                "flag",
                subject,
                f"full-gradient accuracy {100 * af:.1f}% is far above BPDA's "
                f"{100 * ab:.1f}%: the exact gradient through the purifier is masked",
                **nums,
            )
        ]
    if ab - af >= GAP:
        return [
            record(
                "full-vs-bpda",
                "flag",
                subject,
                f"BPDA accuracy {100 * ab:.1f}% is far above full-gradient "
                f"{100 * af:.1f}%: BPDA's identity approximation misleads the attack; report the full-gradient "
                "number",
                **nums,
            )
        ]
    return [
        record(
            "full-vs-bpda",
            "ok",
            subject,
            f"full-gradient {100 * af:.1f}% and BPDA {100 * ab:.1f}% agree within {100 * GAP:.0f} points",
            **nums,
        )
    ]


def large_eps_from_rows(g: pd.DataFrame, defense: str, threat: ThreatModel) -> list[Record]:
    per_sample = g[g["error"].isna()].groupby("sample_id")["robust"].min()
    labels = g.groupby("sample_id")["label"].first()
    threshold = min(1.0, float(labels.value_counts().max()) / max(len(labels), 1) + LARGE_EPS_SLACK)
    acc = float(per_sample.mean()) if len(per_sample) else float("nan")
    if threshold >= 1.0:
        return [one_class_record(defense, threat, len(per_sample))]
    return [
        large_eps_record(
            defense, "worst case over the suite's attacks", threat, acc, threshold, len(per_sample), "rows"
        )
    ]


def _robust_traces(g: pd.DataFrame, spec: AttackSpec | None) -> np.ndarray | None:
    """The loss traces of the cell's still-robust points over one restart (None when too short)."""
    traces = [
        np.asarray(t, dtype=float)
        for t, r in zip(g["loss_trace"], g["robust"], strict=True)
        if t is not None and len(t) > 0 and r > 0
    ]
    if not traces:
        return None
    params = spec.params if spec is not None else {}
    steps, restarts = params.get("steps"), params.get("restarts", 1)
    length = min(len(t) for t in traces)
    traces = [t[-length:] for t in traces]
    if isinstance(steps, int) and isinstance(restarts, int) and restarts > 1 and length == steps * restarts:
        traces, length = [t[-steps:] for t in traces], steps
    return np.stack(traces) if length >= 5 else None


def loss_not_converged(g: pd.DataFrame, spec: AttackSpec | None, num_classes: int | None) -> list[Record]:
    first = g.iloc[0]
    params = spec.params if spec is not None else {}
    loss = params.get("loss", "ce" if first["attack_name"] == "pgd" else None)
    if loss not in LOSSES_WITH_THRESHOLD:
        return []  # a trace whose success threshold is unknown
    stack = _robust_traces(g, spec)
    if stack is None:
        return []
    length = stack.shape[1]
    w = max(1, length // 5)
    slope = (stack[:, -w:].mean(1) - stack[:, -2 * w : -w].mean(1)) / w
    projected = stack[:, -1] + np.maximum(slope, 0) * length
    rising = int(((slope > 0) & (projected >= trace_threshold(loss, num_classes))).sum())
    subject = f"{first['defense']} / {first['attack']} / {ThreatModel(first['norm'], float(first['eps'])).label}"
    nums = {"rising": rising, "robust_rows": len(stack), "steps": length, "loss": loss}
    if rising:
        return [
            record(
                "loss-not-converged",
                "flag",
                subject,
                f"{rising} of {len(stack)} still-robust point(s) have a {loss} loss still rising fast enough "
                f"to cross the misclassification threshold within {length} more steps: more steps would "
                "likely lower the accuracy",
                **nums,
            )
        ]
    return [
        record(
            "loss-not-converged",
            "ok",
            subject,
            "no still-robust point's loss is on course to cross the misclassification threshold",
            **nums,
        )
    ]


def row_checks(df: pd.DataFrame, suite: Suite, dim: int | None = None, num_classes: int | None = None) -> list[Record]:
    """Every row check, per defense x threat, then per cell."""
    if df.empty:
        return []
    out: list[Record] = judge_draws_check(df, suite) + draws_trend_check(df)
    out += adaptive_attack_check(df, suite) + early_stop_check(df, suite)
    s = scored(df, suite.evaluation.scoring)
    s = s[s["norm"] != "none"]
    attacks = {a.id: a for a in suite.attacks}
    broken_by = s["broken_by"] if "broken_by" in s else pd.Series(None, index=s.index)
    s = s.assign(
        attacked=broken_by.isna() & s["error"].isna(),
        kind=[attack_kind(attacks.get(a), gr) for a, gr in zip(s["attack"], s["gradient"], strict=True)],
    )
    for key, g in s.groupby(["defense", "norm", "eps"], sort=False):
        defense, norm, eps = str(key[0]), str(key[1]), float(key[2])  # type: ignore[arg-type]
        threat = ThreatModel(norm, eps)  # type: ignore[arg-type]
        subject = f"{defense} / {threat.label}"
        out += black_box_vs_white_box(g, subject, str(norm), float(eps))
        out += full_vs_bpda(g, subject, str(norm), float(eps))
        if dim is not None and float(eps) >= large_eps(str(norm), dim):
            out += large_eps_from_rows(g, str(defense), threat)
    for _, g in s.groupby("cell", sort=False):
        out += loss_not_converged(g, attacks.get(str(g.iloc[0]["attack"])), num_classes)
    return out
