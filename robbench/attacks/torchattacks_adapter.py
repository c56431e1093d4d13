"""Every attack class of the optional ``torchattacks`` package as the attack ``torchattacks.<Name>``.

Registration: one entry point, ``torchattacks``, names this module's :class:`TorchAttack` *family*.
The registry resolves a dotted name ``torchattacks.PGD`` by loading the family and calling its
``family_member("PGD")`` (see :meth:`robbench.core.registry.Registry.get`), which returns a subclass
bound to ``torchattacks.PGD``. So every class the installed torchattacks has is available without
listing them in ``pyproject.toml``, new torchattacks releases included, and ``robbench ls`` stays
import-free (it shows the one family line). The family name alone is not an attack.

When torchattacks is not installed, resolving any member fails with one message naming
``pip install 'robbench[torchattacks]'`` (at ``robbench validate``, before any compute).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any, ClassVar, Literal, cast

from pydantic import Field
from torch import Tensor

from robbench.attacks._thirdparty import LIBRARY_NORMS, run_library
from robbench.attacks.base import Attack
from robbench.attacks.target import Target
from robbench.core.components import BuildContext, Params, ParamsModel
from robbench.core.seeding import SampleRNG
from robbench.core.threat import ThreatModel
from robbench.errors import RegistryError, SuiteError

INSTALL_HINT = "pip install 'robbench[torchattacks]'"
ALL = frozenset({"linf", "l2", "l1"})
_LINF = frozenset({"linf"})

#: torchattacks 3.5 classes whose threat model is known: norms robbench may run them at
KNOWN_NORMS: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        (
            "FGSM",
            "BIM",
            "RFGSM",
            "PGD",
            "EOTPGD",
            "FFGSM",
            "TPGD",
            "MIFGSM",
            "UPGD",
            "DIFGSM",
            "TIFGSM",
            "Jitter",
            "NIFGSM",
            "PGDRS",
            "SINIFGSM",
            "VMIFGSM",
            "VNIFGSM",
            "SPSA",
            "PIFGSM",
            "PIFGSMPP",
        ),
        _LINF,
    ),
    "PGDL2": frozenset({"l2"}),
    "PGDRSL2": frozenset({"l2"}),
    "APGD": frozenset({"linf", "l2"}),
    "APGDT": frozenset({"linf", "l2"}),
    "Square": frozenset({"linf", "l2"}),
    "AutoAttack": frozenset({"linf", "l2"}),
    "FAB": ALL,
    # unbounded (minimum-norm, L0, or noise) attacks: any norm, the result projected onto the ball
    **dict.fromkeys(
        ("CW", "DeepFool", "EADEN", "EADL1", "SparseFool", "OnePixel", "Pixle", "JSMA", "VANILA", "GN"), ALL
    ),
}
#: classes that query only outputs (SPSA estimates gradients by finite differences)
GRADIENT_FREE = frozenset({"Square", "SPSA", "OnePixel", "Pixle", "GN", "VANILA"})
#: wrappers around other attack objects, not attacks themselves
WRAPPERS = frozenset({"MultiAttack", "LGV"})
#: constructor arguments robbench sets itself
RESERVED = frozenset({"model", "eps", "norm"})


def import_torchattacks() -> Any:
    """The ``torchattacks`` module, or a :class:`RegistryError` naming the extra to install."""
    try:
        return importlib.import_module("torchattacks")
    except ImportError:
        raise RegistryError(
            "the torchattacks.<Name> attacks need the optional package torchattacks, which is not installed",
            hint=INSTALL_HINT,
        ) from None


def attack_names(ta: Any) -> list[str]:
    """Names of the attack classes a torchattacks module exposes (wrappers excluded)."""
    base = getattr(ta, "Attack", None)
    names = getattr(ta, "__all__", None) or [n for n in dir(ta) if not n.startswith("_")]
    out = []
    for n in names:
        obj = getattr(ta, n, None)
        if (
            isinstance(obj, type)
            and n not in WRAPPERS
            and (base is None or (issubclass(obj, base) and obj is not base))
        ):
            out.append(n)
    return sorted(out)


def class_norms(name: str, klass: type) -> frozenset[str]:
    """Norms a torchattacks class can be run at: the table above, else read from its signature."""
    if name in KNOWN_NORMS:
        return KNOWN_NORMS[name]
    sig = inspect.signature(klass).parameters
    if "norm" in sig:
        return frozenset({"linf", "l2"})
    if "eps" in sig:
        return frozenset({"l2"}) if name.upper().endswith("L2") else _LINF
    return ALL


class TorchAttackParams(Params):
    #: keyword arguments of the torchattacks class (not model, eps or norm: robbench sets those from
    #: the threat); ``seed`` defaults to the suite-derived seed where the class takes one
    kwargs: dict[str, Any] = Field(default_factory=dict)
    #: ``sample``: one call per sample (rows independent of the batch size); ``batch``: one per batch
    batching: Literal["sample", "batch"] = "sample"


_MEMBERS: dict[tuple[int, str], type[TorchAttack]] = {}


class TorchAttack(Attack):
    """Any torchattacks attack class as `torchattacks.<Name>` (optional extra robbench[torchattacks]).

    Paper: Kim, "Torchattacks: A PyTorch Repository for Adversarial Attacks", arXiv:2010.01950, and
    each class's own paper. Threat norms: per class (e.g. PGD linf, PGDL2 l2, APGD/Square linf and l2;
    unbounded attacks such as CW or DeepFool any norm, their output projected onto the ball).

    Parameters: ``kwargs`` (the class's keyword arguments except model, eps, norm) and ``batching``
    (sample | batch, as for AutoAttack).

    Choices: the attack runs on ``Target.as_module()``, so the cell's gradient mode and randomness
    apply; ``eps`` and ``norm`` come from the suite's threat; torchattacks draws from torch's global
    generator, so each call runs in a forked global state seeded with the suite-derived per-sample (or
    per-batch) seed, restored afterwards; classes with a ``seed`` argument get that seed too. The
    runner judges the returned images with the real defense. The suite's ``eot:`` does not apply
    (torchattacks' EOTPGD has its own ``eot_iter``).
    """

    Params = TorchAttackParams
    supports_eot = False
    norms = ALL
    #: the torchattacks class this member runs (None for the family entry itself)
    attack_class: ClassVar[str | None] = None
    #: member used by the registry-parametrised tests and the docs
    example_member: ClassVar[str] = "PGD"
    example_params = {"kwargs": {"steps": 3}}

    @classmethod
    def effort(cls, params: ParamsModel) -> tuple[str, int] | None:
        kw = cast(TorchAttackParams, params).kwargs
        if isinstance(kw.get("n_queries"), int):
            return ("queries", int(kw["n_queries"]))
        return ("steps", int(kw["steps"])) if isinstance(kw.get("steps"), int) else None

    @classmethod
    def stops_early(cls, params: ParamsModel) -> str | None:
        return "torchattacks (its own return rule: early stop, first success or clean image)"

    @classmethod
    def own_eot(cls, params: ParamsModel) -> int:
        eot = cast(TorchAttackParams, params).kwargs.get("eot_iter")
        return int(eot) if isinstance(eot, int) else 1

    @classmethod
    def family_member(cls, name: str) -> type[TorchAttack]:
        """The attack bound to ``torchattacks.<name>``; a clear error if absent or not installed."""
        ta = import_torchattacks()
        key = (id(ta), name)
        if key in _MEMBERS:
            return _MEMBERS[key]
        names = attack_names(ta)
        if name in WRAPPERS:
            raise RegistryError(
                f"torchattacks.{name} wraps other attack objects and cannot be built from a suite",
                hint="list the wrapped attacks as separate suite attacks; the table's worst case combines them",
            )
        if name not in names:
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
            did = f" Did you mean: {', '.join('torchattacks.' + c for c in close)}?" if close else ""
            raise RegistryError(
                f"unknown attack 'torchattacks.{name}': the installed torchattacks has no attack class {name!r}.{did}",
                hint=f"torchattacks has: {', '.join(names)}",
            )
        klass = getattr(ta, name)
        member = type(
            f"TorchAttack_{name}",
            (cls,),
            {
                "attack_class": name,
                "norms": class_norms(name, klass),
                "uses_gradients": name not in GRADIENT_FREE,
                "__module__": cls.__module__,
                "__doc__": f"torchattacks.{name} through robbench's adapter.\n\n{cls.__doc__}",
            },
        )
        _MEMBERS[key] = member
        return member

    @classmethod
    def _class(cls) -> type:
        if cls.attack_class is None:
            raise SuiteError(
                "`torchattacks` is a family of attacks, not an attack: name one class",
                hint="e.g. `name: torchattacks.PGD` (any class of torchattacks)",
            )
        return getattr(import_torchattacks(), cls.attack_class)  # type: ignore[no-any-return]

    @classmethod
    def check_params(cls, params: ParamsModel, ctx: BuildContext | None) -> None:
        klass = cls._class()
        p = cast(TorchAttackParams, params)
        reserved = sorted(RESERVED & set(p.kwargs))
        if reserved:
            raise SuiteError(
                f"params.kwargs: {reserved} are set by robbench (the model is the defense, eps and norm "
                "come from the suite's threats)",
                hint=f"remove {reserved} from kwargs",
            )
        sig = inspect.signature(klass).parameters
        if not any(v.kind is inspect.Parameter.VAR_KEYWORD for v in sig.values()):
            accepted = [k for k in sig if k not in ("self", "model") and k not in RESERVED]
            unknown = sorted(set(p.kwargs) - set(accepted))
            if unknown:
                raise SuiteError(
                    f"params.kwargs: torchattacks.{cls.attack_class} has no argument(s) {unknown}",
                    hint=f"it accepts: {', '.join(accepted) or 'nothing'}",
                )

    def run(self, target: Target, x: Tensor, y: Tensor, threat: ThreatModel | None, *, rng: SampleRNG) -> Tensor:
        assert threat is not None
        klass = self._class()
        p: TorchAttackParams = self.params  # type: ignore[assignment]
        sig = inspect.signature(klass).parameters

        def call(t: Target, xb: Tensor, yb: Tensor, seed: int) -> Tensor:
            kw = dict(p.kwargs)
            if "eps" in sig:
                kw["eps"] = threat.eps
            if "norm" in sig:
                kw["norm"] = LIBRARY_NORMS[threat.norm]
            if "seed" in sig and "seed" not in kw:
                kw["seed"] = int(seed)
            atk = klass(t.as_module(), **kw)
            if getattr(atk, "device", None) is None and hasattr(atk, "set_device"):
                atk.set_device(xb.device)
            out: Tensor = atk(xb, yb)
            return out

        x_adv, self.last_evals = run_library(call, target, x, y, threat, rng, p.batching)
        return x_adv
