"""The expansion of ``adaptive`` attack entries (:mod:`robbench.attacks.adaptive`) into concrete attacks.

Each ``{id: A, name: adaptive, params: {...}}`` entry of a suite becomes one attack per protocol, with
id ``A.PROTOCOL`` and ``defenses:`` the defenses it fits, chosen from what each defense class declares:
``stochastic``, ``differentiable``, ``has_purifier`` and ``iterative`` (:class:`Defense`). The expanded
suite is what is validated, planned, run and stored in the manifest; the report's worst-case line is
the per-sample worst case over the protocols. A defense that declares nothing adaptive can use, and a
``max_evals`` cap the protocols cannot meet, are refused with the numbers.
"""

from __future__ import annotations

import importlib.util
from typing import Any, cast

from robbench.core import registry
from robbench.core.components import parse_params
from robbench.errors import SuiteError
from robbench.suite.model import AttackSpec, Suite

#: (protocol name, attack spec fields, defense passes per sample)
Protocol = tuple[str, dict[str, Any], int]


def _pgd(p: Any, **fields: Any) -> dict[str, Any]:
    return {"name": "pgd", "params": {"steps": p.steps, "restarts": p.restarts}, **fields}


#: why the quick level's det-only protocols on a randomised defense read ``adaptive (weak)``
QUICK_WEAK = (
    "adaptive quick level: the judge's draw-0 seeds only, no EoT (on digits up to 6 points above the full "
    "cascade, results/digits_adaptive/REPORT.md)"
)

#: protocols ``level: quick`` leaves out: those that cost more than one defense pass per step
_NOT_QUICK = ("-EoT", "DiffHammer", "DiffAttack", "APGD")


def protocols(cls: Any, p: Any, classes: int = 10) -> list[Protocol]:
    """The protocols ``adaptive`` (parameters ``p``) runs on a defense of class ``cls``, for a data set of
    ``classes`` classes."""
    out = _all_protocols(cls, p, classes)
    if getattr(p, "level", "full") == "quick":
        out = [x for x in out if not any(tag in x[0] for tag in _NOT_QUICK)]
    return out


def _all_protocols(cls: Any, p: Any, classes: int) -> list[Protocol]:
    s, k, r, q = p.steps, p.eot, p.restarts, p.square_queries
    grad, det = 2 * s * r, 2 * s * r  # a forward and a backward per step
    out: list[Protocol] = []
    if cls.stochastic:
        if cls.differentiable:
            out.append((f"PGD{s}-EoT{k}-full", _pgd(p, gradient="full", eot=k), grad * k))
            out.append((f"PGD{s}-det-full", _pgd(p, gradient="full", randomness="det"), det))
            hammer = {"name": "diffhammer", "params": {"steps": s, "draws": k, "restarts": r}, "gradient": "full"}
            out.append((f"DiffHammer{s}-{k}", hammer, 2 * (s + 1) * k * r))
            if cls.records_trajectory:  # Kang et al. 2023: the reverse chain pushed off the clean one
                da = {"name": "diffattack", "params": {"steps": s, "restarts": r}, "gradient": "full", "eot": k}
                out.append((f"DiffAttack{s}-EoT{k}", da, grad * k))
        if cls.has_purifier:
            out.append((f"BPDA{s}-EoT{k}", _pgd(p, gradient="bpda", eot=k), grad * k))
            out.append((f"BPDA{s}-det", _pgd(p, gradient="bpda", randomness="det"), det))
        if cls.surrogate_process:  # Lee & Kim 2023: the exact gradient of a cheaper purifier, with EoT
            out.append((f"SP{s}-EoT{k}", _pgd(p, gradient="custom", eot=k), grad * k))
    else:
        if cls.differentiable:
            out.append((f"PGD{s}-full", _pgd(p, gradient="full"), grad))
            apgd = {"steps": s, "restarts": r}  # native APGD: Linf, L2 and L1
            out.append((f"APGD-CE{s}", {"name": "apgd", "params": apgd, "gradient": "full"}, 2 * (s + 1) * r))
            if classes >= 4:  # APGD-T toward the 3 highest-ranked wrong classes (targeted DLR needs 4+ classes)
                apgd_t = {**apgd, "loss": "dlr", "targets": 3}
                out.append((f"APGD-T{s}", {"name": "apgd", "params": apgd_t, "gradient": "full"}, 6 * (s + 1) * r + 1))
        if cls.has_purifier and (cls.iterative or not cls.differentiable):
            out.append((f"BPDA{s}", _pgd(p, gradient="bpda"), grad))
        if cls.surrogate_process:
            out.append((f"SP{s}", _pgd(p, gradient="custom"), grad))
    if not cls.differentiable and importlib.util.find_spec("pyautoattack") is not None:
        out.append((f"Square{q}", {"name": "square", "params": {"n_queries": q}}, q))
    return out


def _check_entry(a: AttackSpec) -> None:
    if a.gradient != "full" or a.randomness != "fresh" or a.eot != 1 or a.surrogate is not None:
        raise SuiteError(
            f"attack {a.id}: adaptive chooses gradient mode, randomness and EoT per defense itself",
            hint=f"remove gradient/randomness/eot/surrogate from attack {a.id} (set steps and eot under params)",
        )


def _expand_one(suite: Suite, a: AttackSpec, notes: list[str]) -> list[AttackSpec]:
    _check_entry(a)
    from robbench.attacks.adaptive import AdaptiveParams

    p = cast(AdaptiveParams, parse_params(AdaptiveParams, a.params, f"attack {a.id}"))
    chosen: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for d in suite.defenses:
        if a.defenses is not None and d.display not in a.defenses:
            continue
        found = protocols(registry.defenses.get(d.name), p, _classes(suite))
        if not found:
            raise SuiteError(
                f"attack {a.id}: defense {d.display!r} declares nothing adaptive can use (not differentiable, no "
                "purifier to replace, and Square needs pyautoattack)",
                hint="declare `differentiable = True` or `has_purifier = True` on the defense class, install "
                "robbench[autoattack] for Square, or attack it with an explicit attack",
            )
        cost = sum(c for _, _, c in found)
        if p.max_evals is not None and cost > p.max_evals:
            raise SuiteError(
                f"attack {a.id}: on defense {d.display!r} the protocols cost about {cost} defense passes per "
                f"sample, over max_evals {p.max_evals} ({', '.join(f'{n} {c}' for n, _, c in found)})",
                hint="raise max_evals, or lower steps / eot under the attack's params",
            )
        notes.append(f"attack {a.id} on {d.display}: {', '.join(n for n, _, _ in found)} (~{cost} passes/sample)")
        for name, fields, _ in found:
            if p.level == "quick" and fields.get("randomness") == "det":
                fields = {**fields, "weak": QUICK_WEAK}
            chosen.setdefault(name, (fields, []))[1].append(d.display)
    specs = []
    for name, (fields, displays) in chosen.items():
        norms = _norms(suite, a, fields["name"])
        if norms is None or norms:  # a protocol with no threat of its norms is left out
            specs.append(
                AttackSpec.model_validate({"id": f"{a.id}.{name}", **fields, "norms": norms, "defenses": displays})
            )
    return specs


def _norms(suite: Suite, a: AttackSpec, attack: str) -> list[str] | None:
    """The norms of an expanded protocol: the entry's, cut to what the protocol's attack supports."""
    supported = registry.attacks.get(attack).norms
    wanted = a.norms if a.norms is not None else sorted({t.norm for t in suite.threats})
    if all(n in supported for n in wanted):
        return a.norms
    return [n for n in wanted if n in supported]


def expand_adaptive(suite: Suite, notes: list[str] | None = None) -> Suite:
    """The suite with every ``adaptive`` entry replaced by its protocols (the suite itself when it has none);
    the expansion per defense goes to ``notes``."""
    if not any(_is_adaptive(a) for a in suite.attacks):
        return suite
    sink: list[str] = [] if notes is None else notes
    attacks: list[AttackSpec] = []
    for a in suite.attacks:
        attacks.extend(_expand_one(suite, a, sink) if _is_adaptive(a) else [a])
    ids = [a.id for a in attacks]
    clash = sorted({i for i in ids if ids.count(i) > 1})
    if clash:
        raise SuiteError(f"attack ids {', '.join(clash)} repeat after expanding adaptive", hint="rename those attacks")
    return suite.model_copy(update={"attacks": attacks})


def _classes(suite: Suite) -> int:
    """The suite's data set's class count (10 where the data set cannot be resolved: validation names it)."""
    try:
        return int(registry.datasets.get(suite.data.dataset).num_classes)
    except Exception:
        return 10


def _is_adaptive(a: AttackSpec) -> bool:
    from robbench.attacks.adaptive import Adaptive

    try:
        return registry.attacks.get(a.name) is Adaptive
    except Exception:  # an unknown attack name is reported by validation
        return False
