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
import torch

from robbench import registry
from robbench.errors import RobbenchError
from robbench.seeding import SampleRNG
from robbench.summary import scored
from robbench.threat import ThreatModel, max_eps

if TYPE_CHECKING:
    from robbench.defenses.base import Defense
    from robbench.runner import Executor, Plan

N_SAMPLES = 16
LARGE_EPS_STEPS = 20
LARGE_EPS_SLACK = 0.1
VANISHING_RATIO = 1e-3
GAP = 0.10
LOSSES_WITH_THRESHOLD = ("ce", "margin")


def trace_threshold(loss: str, num_classes: int | None) -> float:
    """A loss value past which a point is surely misclassified: margin 0; cross-entropy ln K (p_y < 1/K)."""
    if loss == "margin":
        return 0.0
    return math.log(num_classes) if num_classes and num_classes > 2 else math.log(2.0)
WHITE_BOX = ("full", "bpda", "custom")


def large_eps(norm: str, dim: int) -> float:
    """A budget containing the mid-grey image around every input in [0,1]^dim."""
    return {"linf": 0.5, "l2": 0.5 * math.sqrt(dim), "l1": 0.5 * dim}[norm]


def _rec(check: str, status: str, subject: str, message: str, **numbers: Any) -> dict[str, Any]:
    return {"check": check, "status": status, "subject": subject, "message": message, **numbers}


def not_computed(display: str, why: str) -> dict[str, Any]:
    """The ``info`` record standing for a defense's compute checks that could not be made (``why``)."""
    return _rec("checks", "info", display, f"compute checks {why}")


# ---- compute checks ---------------------------------------------------------------------------
def _gradient_modes(plan: Plan, display: str) -> list[str]:
    modes: list[str] = []
    for c in plan.cells:
        if c.defense.display != display or c.threat is None or c.attack.surrogate is not None:
            continue
        if registry.attacks.get(c.attack.name).uses_gradients and c.attack.gradient in WHITE_BOX and c.attack.gradient not in modes:
            modes.append(c.attack.gradient)
    return modes


def _randomness(defense: Defense, plan: Plan, display: str, x: torch.Tensor, ids: list[str], seed: int) -> list[dict[str, Any]]:
    out = []
    with torch.no_grad():
        if not defense.stochastic:
            a, b = defense(x, None), defense(x, None)
            diff = float((a - b).abs().max())
            if diff > 0:
                out.append(_rec("randomness", "flag", display,
                                f"declared deterministic, but two forwards of the same input differ (max |logit diff| {diff:.3g}): "
                                "it draws randomness outside the generator it is given", max_diff=diff))
            else:
                out.append(_rec("randomness", "ok", display, "deterministic: identical logits for the same input", max_diff=0.0))
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
        out.append(_rec("randomness", "flag", display,
                        f"stochastic, but not repeatable with its seeds rewound (max |logit diff| {repeat:.3g}): "
                        "randomness drawn outside its generator; det-randomness attacks cannot be trusted", max_diff=repeat))
    cells = [c for c in plan.cells if c.defense.display == display and c.threat is not None]
    adaptive = any(c.eot > 1 or c.randomness == "det" for c in cells)
    uses_aa_rand = any(c.attack.name == "autoattack" and c.attack.params.get("version") == "rand" for c in cells)
    if spread == 0:
        out.append(_rec("randomness", "info", display, "declared stochastic, but two draws gave identical logits", max_diff=0.0))
    elif cells and not (adaptive or uses_aa_rand):
        out.append(_rec("randomness", "flag", display,
                        f"randomised (two draws differ by up to {spread:.3g} in the logits) and attacked with neither EoT "
                        "nor det randomness: single-draw attacks overestimate its robustness", max_diff=spread))
    elif not repeat:
        out.append(_rec("randomness", "ok", display, "randomised, repeatable with fixed seeds, attacked with EoT or det",
                        max_diff=spread))
    return out


def _softmax(defense: Defense, display: str, x: torch.Tensor, ids: list[str], seed: int) -> dict[str, Any]:
    rng = SampleRNG.for_samples(ids, seed, "checks-softmax", device=x.device) if defense.stochastic else None
    with torch.no_grad():
        out = defense(x, rng)
    prob = bool(out.min() > -1e-5 and out.max() < 1 + 1e-5 and ((out.sum(-1) - 1).abs() < 1e-5).all())
    if prob:
        return _rec("softmax-outputs", "flag", display,
                    "outputs are in [0,1] and sum to 1: probabilities, not logits; attack losses saturate on them")
    return _rec("softmax-outputs", "ok", display, "outputs are logits")


def _zero_gradients(defense: Defense, display: str, mode: str, x: torch.Tensor, y: torch.Tensor, ids: list[str],
                    seed: int) -> dict[str, Any]:
    from robbench.target import Target

    def grad(m: str) -> torch.Tensor:
        rng = SampleRNG.for_samples(ids, seed, "checks-grad", device=x.device) if defense.stochastic else None
        t = Target(defense, gradient=m, randomness="fresh", rng=rng)  # type: ignore[arg-type]
        _, g, _ = t.loss_grad(x, y, "margin")
        return g.flatten(1)

    g = grad(mode)
    norms = g.norm(dim=1)
    zero = float((norms == 0).float().mean())
    numbers: dict[str, Any] = {"zero_share": zero, "gradient": mode}
    ratio = None
    if defense.classifier is not None and mode != "classifier":
        ref = grad("classifier").norm(dim=1)
        ok = ref > 0
        if bool(ok.any()):
            ratio = float((norms[ok] / ref[ok]).median())
            numbers["norm_ratio"] = ratio
    subject = f"{display} / gradient {mode}"
    if zero > 0:
        return _rec("zero-gradients", "flag", subject,
                    f"{100 * zero:.0f}% of samples have an exactly zero input gradient: gradient attacks get no signal "
                    "(shattered gradients; try BPDA or a gradient-free attack)", **numbers)
    if ratio is not None and ratio < VANISHING_RATIO:
        return _rec("zero-gradients", "flag", subject,
                    f"input gradients are {ratio:.2g}x the classifier's alone (median): they vanish through the purifier", **numbers)
    return _rec("zero-gradients", "ok", subject, "non-zero input gradients", **numbers)


def _large_eps_attack(defense: Defense, display: str, mode: str, threat: ThreatModel, x: torch.Tensor, y: torch.Tensor,
                      ids: list[str], seed: int, threshold: float) -> dict[str, Any]:
    from robbench.attacks.pgd import PGD, PGDParams
    from robbench.target import Target

    rng = SampleRNG.for_samples(ids, seed, "checks-large-eps", mode, threat.id, device=x.device) if defense.stochastic else None
    target = Target(defense, gradient=mode, randomness="fresh", rng=rng)  # type: ignore[arg-type]
    attack = PGD(PGDParams(steps=LARGE_EPS_STEPS, loss="margin"))
    x_adv = attack.run(target, x, y, threat, rng=SampleRNG.for_samples(ids, seed, "checks-large-eps-attack", device=x.device))
    judge = SampleRNG.for_samples(ids, seed, "checks-large-eps-judge", device=x.device) if defense.stochastic else None
    with torch.no_grad():
        acc = float((defense(x_adv, judge).argmax(1) == y).float().mean())
    return _large_eps_record(display, f"PGD{LARGE_EPS_STEPS} gradient {mode}", threat, acc, threshold, len(ids), "computed")


def _large_eps_record(display: str, how: str, threat: ThreatModel, acc: float, threshold: float, n: int,
                      source: str) -> dict[str, Any]:
    subject = f"{display} / {threat.label} / {how}"
    nums = {"accuracy": acc, "threshold": threshold, "n": n, "source": source, "norm": threat.norm, "eps": threat.eps}
    if acc > threshold:
        return _rec("large-eps", "flag", subject,
                    f"accuracy {100 * acc:.0f}% at a budget that contains the grey image (expected <= {100 * threshold:.0f}%): "
                    "the attack does not work on this defense (masked gradients or a broken attack)", **nums)
    return _rec("large-eps", "ok", subject, f"accuracy {100 * acc:.0f}% at a very large budget", **nums)


def checked_defenses(plan: Plan) -> list[str]:
    """The defenses (display names, suite order) the compute checks cover: those with cells in the plan."""
    return [d.display for d in plan.suite.defenses if any(c.defense.display == d.display for c in plan.cells)]


def defense_checks(plan: Plan, ex: Executor, display: str, n: int = N_SAMPLES) -> list[dict[str, Any]]:
    """The compute checks of one defense (randomness, softmax, gradients, large eps) on ``n`` samples.

    Depends only on the plan, the suite seed and the defense, not on where it runs: a worker process
    computes the same records as the coordinator. A defense that cannot be built gives one ``info``
    record saying why (its rows say so too).
    """
    data = ex.data
    n = min(n, len(data.ids))
    x = data.x[:n].to(ex.device)
    y = data.y[:n].to(ex.device)
    ids = list(data.ids[:n])
    seed = plan.suite.seed
    dim = int(x[0].numel())
    counts = np.bincount(y.cpu().numpy(), minlength=1)
    threshold = min(1.0, float(counts.max()) / n + LARGE_EPS_SLACK)
    norms = sorted({t.norm for t in plan.suite.threat_models()})
    large_threats = {t.norm: t for t in plan.suite.threat_models() if t.eps >= large_eps(t.norm, dim)}
    spec = next(d for d in plan.suite.defenses if d.display == display)
    try:
        defense = ex.defense(spec)
    except RobbenchError as exc:
        return [not_computed(display, f"skipped: {exc.message}")]
    out: list[dict[str, Any]] = []
    out.extend(_randomness(defense, plan, display, x, ids, seed))
    out.append(_softmax(defense, display, x, ids, seed))
    modes = _gradient_modes(plan, display)
    for mode in modes:
        out.append(_zero_gradients(defense, display, mode, x, y, ids, seed))
    # only the norms this defense is attacked in (a defense never attacked in L1 needs no L1 check)
    attacked = {c.threat.norm for c in plan.cells if c.defense.display == display and c.threat is not None}
    for norm in (nm for nm in norms if nm in attacked):
        if norm in large_threats:
            continue  # judged from the rows
        threat = ThreatModel(norm, min(large_eps(norm, dim), 0.999 * max_eps(norm, dim)))  # type: ignore[arg-type]
        for mode in modes:
            out.append(_large_eps_attack(defense, display, mode, threat, x, y, ids, seed, threshold))
    return out


def defense_checks_safely(plan: Plan, ex: Executor, display: str, n: int = N_SAMPLES) -> list[dict[str, Any]]:
    """:func:`defense_checks`, with a crash of the defense recorded as an ``info`` record instead of raised.

    A defense that crashes on these samples has crashed in its units too (their failure rows say
    so); the run's other checks and its manifest must not be lost to it.
    """
    try:
        return defense_checks(plan, ex, display, n)
    except Exception as exc:  # noqa: BLE001 - see above
        return [not_computed(display, f"failed: {type(exc).__name__}: {exc}")]


def compute_checks(plan: Plan, ex: Executor, n: int = N_SAMPLES,
                   computed: dict[str, list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """The compute checks of every defense, in suite order.

    ``computed`` holds the records already computed elsewhere (a worker pool computes them beside
    the units), by defense display name; the defenses missing from it are computed here.
    """
    done = computed or {}
    out: list[dict[str, Any]] = []
    for display in checked_defenses(plan):
        out.extend(done[display] if display in done else defense_checks_safely(plan, ex, display, n))
    return out


# ---- row checks ------------------------------------------------------------------------------
def _uses_gradients(name: str) -> bool:
    try:
        return bool(registry.attacks.get(name).uses_gradients)
    except Exception:  # noqa: BLE001 - an attack no longer installed: treat as white-box unknown
        return True


def row_checks(df: pd.DataFrame, manifest: dict[str, Any], dim: int | None = None,
               num_classes: int | None = None) -> list[dict[str, Any]]:
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
            nums = {"samples": len(beaten), "n": int(g["sample_id"].nunique()), "gradient": mode, "norm": norm,
                    "eps": float(eps)}
            if beaten:
                by = sorted(set(black.loc[black["sample_id"].isin(beaten) & (black["robust"] == 0), "attack"]))
                out.append(_rec("black-box-beats-white-box", "flag", f"{subject} / gradient {mode}",
                                f"{len(beaten)} sample(s) broken by {', '.join(by)} survived every {mode}-gradient attack: "
                                "those gradients are masked or the attacks too weak", **nums))
            else:
                out.append(_rec("black-box-beats-white-box", "ok", f"{subject} / gradient {mode}",
                                f"no sample broken by black-box attacks survived the {mode}-gradient attacks", **nums))
        # full vs BPDA
        acc = g[g["kind"] == "white"].groupby(["attack", "gradient"])["robust"].mean()
        full = [v for (a, gr), v in acc.items() if gr == "full"]
        bpda = [v for (a, gr), v in acc.items() if gr == "bpda"]
        if full and bpda:
            af, ab = float(min(full)), float(min(bpda))
            nums = {"full_accuracy": af, "bpda_accuracy": ab, "norm": norm, "eps": float(eps)}
            if af - ab >= GAP:
                out.append(_rec("full-vs-bpda", "flag", subject,
                                f"full-gradient accuracy {100 * af:.1f}% is far above BPDA's {100 * ab:.1f}%: "
                                "the exact gradient through the purifier is masked", **nums))
            elif ab - af >= GAP:
                out.append(_rec("full-vs-bpda", "flag", subject,
                                f"BPDA accuracy {100 * ab:.1f}% is far above full-gradient {100 * af:.1f}%: BPDA's identity "
                                "approximation misleads the attack; report the full-gradient number", **nums))
            else:
                out.append(_rec("full-vs-bpda", "ok", subject,
                                f"full-gradient {100 * af:.1f}% and BPDA {100 * ab:.1f}% agree within {100 * GAP:.0f} points", **nums))
        # large eps from rows
        if dim is not None and float(eps) >= large_eps(norm, dim):
            per_sample = g[g["error"].isna()].groupby("sample_id")["robust"].min()
            labels = g.groupby("sample_id")["label"].first()
            threshold = min(1.0, float(labels.value_counts().max()) / max(len(labels), 1) + LARGE_EPS_SLACK)
            out.append(_large_eps_record(str(defense), "worst case over the suite's attacks", threat,
                                         float(per_sample.mean()) if len(per_sample) else float("nan"), threshold,
                                         len(per_sample), "rows"))
    # loss curves: extrapolate each still-robust point's late slope over as many steps again
    for cell, g in s.groupby("cell", sort=False):
        first = g.iloc[0]
        spec = attacks.get(first["attack"], {})
        params = spec.get("params") or {}
        loss = params.get("loss", "ce" if first["attack_name"] == "pgd" else None)
        if loss not in LOSSES_WITH_THRESHOLD:
            continue  # a trace whose success threshold is unknown
        traces = [np.asarray(t, dtype=float) for t, r in zip(g["loss_trace"], g["robust"], strict=True)
                  if t is not None and len(t) > 0 and r > 0]
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
            out.append(_rec("loss-not-converged", "flag", subject,
                            f"{rising} of {len(traces)} still-robust point(s) have a {loss} loss still rising fast enough to "
                            f"cross the misclassification threshold within {length} more steps: more steps would likely "
                            "lower the accuracy", **nums))
        else:
            out.append(_rec("loss-not-converged", "ok", subject,
                            "no still-robust point's loss is on course to cross the misclassification threshold", **nums))
    return out


def run_checks(plan: Plan, ex: Executor, compute: bool = True,
               computed: dict[str, list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """All checks for a finished (or partial) run: compute checks (unless ``compute`` is off), then row checks.

    ``computed``: compute-check records already made by the workers, per defense (see :func:`compute_checks`).
    """
    out = compute_checks(plan, ex, computed=computed) if compute else []  # never raises (defense_checks_safely)
    df = ex.results.read_rows(cells={c.id for c in plan.cells})
    manifest = {"suite": plan.suite.model_dump(mode="json")}
    dim = int(ex.data.x[0].numel())
    out.extend(row_checks(df, manifest, dim, plan.dataset.num_classes))
    return out


def flags(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records that need the reader's attention."""
    return [c for c in checks if c.get("status") == "flag"]


def format_checks(checks: list[dict[str, Any]] | None) -> list[str]:
    """Lines for the table's footer: every flag, then a one-line count of the passed checks."""
    if not checks:
        return []
    lines = [f"FLAG {c['check']}: {c['subject']}: {c['message']}" for c in flags(checks)]
    passed = [c for c in checks if c.get("status") == "ok"]
    kinds = sorted({c["check"] for c in passed})
    if passed:
        lines.append(f"ok: {len(passed)} check(s) passed ({', '.join(kinds)})")
    return lines
