"""AutoAttack and Square through the ``pyautoattack`` package, on any gradient mode of the target."""

from __future__ import annotations

import sys
from typing import Any, Literal, cast

import torch
from pydantic import Field, model_validator
from torch import Tensor

from robbench.attacks._thirdparty import LIBRARY_NORMS, captured_log, run_library
from robbench.attacks.autoattack_rand import run_every_point, square_every_point
from robbench.attacks.base import Attack
from robbench.attacks.target import Target
from robbench.core.components import BuildContext, Params, ParamsModel
from robbench.core.seeding import SampleRNG
from robbench.core.threat import ThreatModel
from robbench.errors import SuiteError

AAAttack = Literal["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"]

_MISSING = ("pyautoattack is not installed", "pip install 'robbench[autoattack]'  (or: pip install pyautoattack)")


def _import_pyautoattack() -> Any:
    try:
        import pyautoattack
    except ImportError:
        raise SuiteError(f"attack needs the optional package: {_MISSING[0]}", hint=_MISSING[1]) from None
    return pyautoattack


class AutoAttackParams(Params):
    #: ``standard`` (APGD-CE, APGD-T, FAB-T, Square), ``rand`` (APGD-CE, APGD-DLR with EoT 20, for
    #: randomised defenses), ``plus``, or ``custom`` with ``attacks``
    version: Literal["standard", "rand", "plus", "custom"] = "standard"
    #: the attacks of ``version: custom``, run in this order on the points still robust
    attacks: list[AAAttack] | None = None
    #: APGD iterations (pyautoattack: 100); its step-size checkpoints are rescaled to match
    apgd_iter: int | None = Field(default=None, ge=1, le=100_000)
    #: restarts of untargeted APGD (version default when unset)
    apgd_restarts: int | None = Field(default=None, ge=1, le=1000)
    #: target classes of APGD-T and FAB-T (version default: 9)
    targets: int | None = Field(default=None, ge=1, le=1000)
    #: FAB iterations (pyautoattack: 100)
    fab_iter: int | None = Field(default=None, ge=1, le=100_000)
    #: Square queries (pyautoattack: 5000)
    square_queries: int | None = Field(default=None, ge=1, le=10_000_000)
    #: EoT iterations of APGD (version rand: 20, else 1)
    eot_iter: int | None = Field(default=None, ge=1, le=10_000)
    #: ``sample``: one pyautoattack call per sample (rows independent of the batch size, exact ``det``
    #: semantics); ``batch``: one call per batch (faster on a GPU; rows depend on the batch size)
    batching: Literal["sample", "batch"] = "sample"

    @model_validator(mode="after")
    def _custom(self) -> AutoAttackParams:
        if self.version == "custom" and not self.attacks:
            raise ValueError(
                "version custom needs `attacks:` (a list of apgd-ce, apgd-dlr, fab, square, apgd-t, fab-t)"
            )
        if self.version != "custom" and self.attacks is not None:
            raise ValueError(f"`attacks:` is only used with version custom (version {self.version} fixes its own list)")
        if self.attacks is not None and len(set(self.attacks)) != len(self.attacks):
            raise ValueError("attacks has duplicates")
        return self


def _attack_list(p: AutoAttackParams) -> list[str]:
    if p.version == "custom":
        return list(p.attacks or [])
    return {
        "standard": ["apgd-ce", "apgd-t", "fab-t", "square"],
        "rand": ["apgd-ce", "apgd-dlr"],
        "plus": ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"],
    }[p.version]


def _set_apgd_iter(apgd: Any, n_iter: int) -> None:
    """Set APGD's iterations and the step-size checkpoints pyautoattack derives from them at init."""
    apgd.n_iter = n_iter
    apgd.n_iter_orig = n_iter
    apgd.n_iter_2 = max(int(0.22 * n_iter), 1)
    apgd.n_iter_min = max(int(0.06 * n_iter), 1)
    apgd.size_decr = max(int(0.03 * n_iter), 1)


def build_autoattack(model: Any, p: AutoAttackParams, threat: ThreatModel, seed: int, device: Any) -> Any:
    """The ``pyautoattack.AutoAttack`` robbench runs for these parameters (overrides applied)."""
    pyaa = _import_pyautoattack()
    aa = pyaa.AutoAttack(
        model,
        norm=LIBRARY_NORMS[threat.norm],
        eps=threat.eps,
        seed=int(seed),
        device=device,
        version=p.version,
        attacks=list(p.attacks or []) if p.version == "custom" else None,
    )
    aa.verbose = False
    if p.apgd_iter is not None:
        _set_apgd_iter(aa.apgd, p.apgd_iter)
        _set_apgd_iter(aa.apgd_targeted, p.apgd_iter)
    if p.apgd_restarts is not None:
        aa.apgd.n_restarts = p.apgd_restarts
    if p.targets is not None:
        aa.apgd_targeted.n_target_classes = p.targets
        aa.fab.n_target_classes = p.targets
    if p.fab_iter is not None:
        aa.fab.n_iter = p.fab_iter
    if p.square_queries is not None:
        aa.square.n_queries = p.square_queries
    if p.eot_iter is not None:
        aa.apgd.eot_iter = p.eot_iter
        aa.apgd_targeted.eot_iter = p.eot_iter
    return aa


class AutoAttack(Attack):
    """AutoAttack (Croce & Hein 2020) via pyautoattack, on the wrapped defense in any gradient mode.

    Paper: Croce, Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
    parameter-free attacks", ICML 2020 (L1: Croce & Hein, "Mind the box", NeurIPS 2021). Threat norms:
    linf, l2, l1.

    Parameters: ``version`` (standard | rand | plus | custom), ``attacks`` (custom list),
    ``apgd_iter``, ``apgd_restarts``, ``targets``, ``fab_iter``, ``square_queries``, ``eot_iter``
    (unset = pyautoattack's version defaults), ``batching`` (sample | batch).

    Choices: the defense is attacked through ``Target.as_module()``, so the cell's gradient mode
    (full, BPDA, classifier, custom) and randomness (det, fresh) apply to every APGD/FAB gradient.
    pyautoattack's seed is set explicitly to the suite-derived seed of each sample (``batching:
    sample``, the default) or of the batch, never left to its time-based default; its global-RNG
    draws run inside a forked, restored generator state. The runner judges the returned images with
    the real defense, so AutoAttack's robust flags become the rows' ``adv_correct``. pyautoattack's
    own warnings (randomised defense, softmax outputs, ...) are collected in ``messages``, not printed;
    robbench's ``checks`` report the same conditions in the manifest. The suite's ``eot:`` does not
    apply (use ``version: rand`` or ``eot_iter``). On a stochastic target (fresh draws) the library's
    single-draw shortcuts (skip points one clean draw misclassifies, return the clean image of every
    point it did not break) would flatter the defense: robbench runs each APGD on every point instead
    and keeps its best-loss iterate (:mod:`robbench.attacks.autoattack_rand`).
    """

    Params = AutoAttackParams
    norms = frozenset({"linf", "l2", "l1"})
    supports_eot = False
    example_params = {"version": "custom", "attacks": ["apgd-ce", "square"], "apgd_iter": 5, "square_queries": 20}

    def __init__(self, params: ParamsModel) -> None:
        super().__init__(params)
        self.messages: list[str] = []

    @classmethod
    def effort(cls, params: ParamsModel) -> tuple[str, int] | None:
        p = cast(AutoAttackParams, params)
        chosen = _attack_list(p)
        if set(chosen) <= {"square"}:
            return ("queries", p.square_queries or 5000)
        gradient = [p.apgd_iter or 100 for a in chosen if a.startswith("apgd")]
        gradient += [p.fab_iter or 100 for a in chosen if a.startswith("fab")]
        return ("steps", max(gradient))

    @classmethod
    def stops_early(cls, params: ParamsModel) -> str | None:
        fab = [a for a in _attack_list(cast(AutoAttackParams, params)) if a.startswith("fab")]
        return f"{' and '.join(fab)} (library FAB)" if fab else None

    @classmethod
    def own_eot(cls, params: ParamsModel) -> int:
        p = cast(AutoAttackParams, params)
        return p.eot_iter or (20 if p.version == "rand" else 1)

    @classmethod
    def check_params(cls, params: ParamsModel, ctx: BuildContext | None) -> None:
        _import_pyautoattack()
        p = cast(AutoAttackParams, params)
        if ctx is None:
            return
        n_cls = ctx.dataset.num_classes
        chosen = _attack_list(p)
        targets = p.targets if p.targets is not None else 9
        targeted = [a for a in chosen if a in ("apgd-t", "fab-t")]
        if targeted and targets > n_cls - 1:
            raise SuiteError(
                f"params.targets: {', '.join(targeted)} would use {targets} target classes but "
                f"{ctx.dataset.name} has only {n_cls - 1} other classes",
                hint=f"set `targets: {n_cls - 1}` (or fewer)",
            )
        if n_cls < 3 and any(a in ("apgd-dlr", "apgd-t") for a in chosen):
            raise SuiteError(
                f"params.version: the DLR loss needs at least 3 classes; {ctx.dataset.name} has {n_cls}",
                hint="use version custom with attacks apgd-ce, fab, square",
            )

    def run(self, target: Target, x: Tensor, y: Tensor, threat: ThreatModel | None, *, rng: SampleRNG) -> Tensor:
        assert threat is not None
        p: AutoAttackParams = self.params  # type: ignore[assignment]

        # not the judge's forward (fresh draws, gray-box, transfer, custom): no library shortcut decides
        every_point = not target.judged_forward

        def call(t: Target, xb: Tensor, yb: Tensor, seed: int) -> Tensor:
            module = t.as_module()
            aa = build_autoattack(module, p, threat, seed, xb.device)
            tracer = sys.gettrace()  # pyautoattack's dynamic-defense check ends with sys.settrace(None)
            try:
                if every_point:
                    draws = max(p.eot_iter or (20 if p.version == "rand" else 1), t.margin_draws)
                    return run_every_point(aa, module, _attack_list(p), xb, yb, 1 if t.deterministic else draws)
                x_adv, _ = aa.run_standard_evaluation(xb, yb, batch_size=xb.shape[0])
            finally:
                sys.settrace(tracer)
            out: Tensor = x_adv
            return out

        with captured_log("auto-attack", self.messages):
            x_adv, self.last_evals = run_library(call, target, x, y, threat, rng, p.batching)
        return x_adv


class SquareParams(Params):
    #: query budget per restart (the AutoAttack paper: 5000)
    n_queries: int = Field(default=5000, ge=1, le=10_000_000)
    #: initial fraction of pixels changed per square (the paper: 0.8 for Linf)
    p_init: float = Field(default=0.8, gt=0.0, le=1.0)
    restarts: int = Field(default=1, ge=1, le=1000)
    loss: Literal["margin", "ce"] = "margin"
    #: rescale the p schedule to ``n_queries`` (pyautoattack's own default; AutoAttack turns it off
    #: at its 5000 queries)
    rescale_schedule: bool = True
    batching: Literal["sample", "batch"] = "sample"


class Square(Attack):
    """Square Attack (Andriushchenko et al. 2020), gradient-free, via pyautoattack.

    Paper: Andriushchenko, Croce, Flammarion, Hein, "Square Attack: a query-efficient black-box
    adversarial attack via random search", ECCV 2020. Threat norms: linf, l2, l1.

    Parameters: ``n_queries`` (5000), ``p_init`` (0.8), ``restarts`` (1), ``loss`` (margin | ce),
    ``rescale_schedule`` (True), ``batching`` (sample | batch; see AutoAttack).

    Choices: queries the defense's logits only (``uses_gradients = False``: the gradient mode is
    irrelevant, its randomness mode applies), so it is the black-box check of the ``checks``
    module: if Square breaks points that every gradient attack left robust, the gradients are
    masked. Seeded from the suite-derived per-sample (or per-batch) seed inside a restored
    global-RNG fork, like AutoAttack. On a randomised target (fresh draws) the library's rule (attack
    only points one clean forward gets right, stop at the first fooled forward, return the clean
    image otherwise) would flatter the defense: robbench runs every point and returns the running
    best of each restart, picked by the margin averaged over the judge's draws.
    """

    Params = SquareParams

    @classmethod
    def effort(cls, params: ParamsModel) -> tuple[str, int] | None:
        return ("queries", cast(SquareParams, params).n_queries)

    norms = frozenset({"linf", "l2", "l1"})
    uses_gradients = False
    supports_eot = False
    example_params = {"n_queries": 30}

    @classmethod
    def check_params(cls, params: ParamsModel, ctx: BuildContext | None) -> None:
        _import_pyautoattack()

    def run(self, target: Target, x: Tensor, y: Tensor, threat: ThreatModel | None, *, rng: SampleRNG) -> Tensor:
        assert threat is not None
        p: SquareParams = self.params  # type: ignore[assignment]
        _import_pyautoattack()
        from pyautoattack.square import SquareAttack

        def call(t: Target, xb: Tensor, yb: Tensor, seed: int) -> Tensor:
            sq = SquareAttack(
                t.as_module(),
                norm=LIBRARY_NORMS[threat.norm],
                n_queries=p.n_queries,
                eps=threat.eps,
                p_init=p.p_init,
                n_restarts=p.restarts,
                seed=int(seed),
                verbose=False,
                loss=p.loss,
                resc_schedule=p.rescale_schedule,
                device=xb.device,
            )
            if not t.judged_forward:  # every point, the running best; no single-forward stopping rule
                module = t.as_module()
                return square_every_point(sq, module, xb, yb, t.margin_draws)
            with torch.no_grad():
                out: Tensor = sq.perturb(xb, yb)
            return out

        x_adv, self.last_evals = run_library(call, target, x, y, threat, rng, p.batching)
        return x_adv
