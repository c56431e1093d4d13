"""Labels shared by every renderer: scoring short names and the legend of marks."""

from __future__ import annotations

from collections.abc import Sequence

SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


#: suffix of a scoring label that only ``evaluation.overrides`` allowed (see robbench.run.honesty)
OVERRIDE = " (override)"


def short_scoring(label: str) -> str:
    """Compact scoring labels for narrow terminals (expanded in the legend)."""
    if label.endswith(OVERRIDE):
        return _short(label.removesuffix(OVERRIDE)) + "!"
    return _short(label)


def _short(label: str) -> str:
    if label.startswith("min over "):
        return f"min/{label.split()[2]} atk"
    for word, short in (("worst", "worst"), ("mean", "mean"), ("majority", "maj"), ("first", "first")):
        if label.startswith(f"{word} of "):
            return f"{short}/{label.split()[2]}"
    return {"deterministic": "determ.", "single draw": "1 draw", "reported only": "paper"}.get(label, label)


_LEGEND = {
    "deterministic": "determ. = deterministic defense, one forward",
    "det-seed": "det-seed = stochastic defense judged only on the seeds known to the attacker (one draw)",
    "single draw": "1 draw = stochastic defense judged on one fresh draw",
    "worst": "worst/m = robust only if correct on all m draws (a det cell's draw 0 is the attacker's seeds)",
    "mean": "mean/m = average correctness over m fresh draws",
    "majority": "maj/m = majority vote over m fresh draws",
    "first": "first/m = the first of m fresh draws",
    "min over": "min/k atk = per sample, the worst case over k attacks",
}
_OVERRIDE_LEGEND = (
    "! = fewer than 4 judge draws, det cells judged on the attacker's seeds alone, or a scoring other than worst "
    "(evaluation.overrides, or table --scoring): can overstate robustness"
)


def legend(labels: Sequence[str]) -> list[str]:
    """Explanations of the scoring labels that occur in a table."""
    out = []
    for key, text in _LEGEND.items():
        if any(lbl == key or lbl.startswith(f"{key} ") for lbl in labels) and text not in out:
            out.append(text)
    if any(lbl.endswith(OVERRIDE) for lbl in labels):
        out.append(_OVERRIDE_LEGEND)
    return out


#: what the ``evaluation`` / ``kind`` column means (every human format prints it)
UB_DAGGER = "†"
WEAK_SIGN = "ʷ"
EVALUATION_LEGEND = (
    f"{UB_DAGGER} = upper bound only: gray-box or transfer attacks, which bound robustness from above and do not "
    f"measure it; {WEAK_SIGN} = adaptive (weak): through the defense but below the strength floor (fewer than 10 "
    "gradient steps or 1000 queries, or single-draw gradients on a randomised defense); every other attacked line "
    "attacks the defense itself, and a worst-case line without a mark is the defense's adaptive robust accuracy "
    "(per-sample worst case over all its attacks)"
)
