"""Native APGD (issue 14; issue 26 item 8): as strong as pyautoattack's APGD-CE on the digits CNN, per-sample
seeds at batch speed (rows do not depend on how samples are batched), every gradient mode through Target."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from robbench.attacks.apgd import APGD, APGDParams, checkpoints, dlr_loss
from robbench.attacks.pgd import PGD, PGDParams
from robbench.attacks.target import Target
from robbench.core.components import BuildContext, NoParams
from robbench.core.seeding import SampleRNG
from robbench.core.threat import ThreatModel
from robbench.data import load_dataset
from robbench.defenses.none import NoDefense


@pytest.fixture(scope="module")
def setup(digits_classifier: Any) -> tuple[Target, torch.Tensor, torch.Tensor, Any]:
    ds = load_dataset("digits")
    data = ds.load("test")
    ctx = BuildContext(dataset=ds, device=torch.device("cpu"), classifier=digits_classifier)
    target = Target(NoDefense(NoParams(), ctx).eval(), gradient="full")
    return target, data.x[:128], data.y[:128], digits_classifier


def _rng(ids: list[str]) -> SampleRNG:
    return SampleRNG.for_samples(ids, 0, "apgd")


def _acc(model: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return 100 * float((model(x).argmax(1) == y).float().mean())


def _pyautoattack(lib: Any, model: Any, norm: str, eps: float, attack: str, x: torch.Tensor, y: torch.Tensor) -> Any:
    """pyautoattack's APGD-CE or APGD-T (3 target classes), 20 iterations, on ``model``: adversarial images."""
    aa = lib.AutoAttack(
        model,
        norm={"l2": "L2", "l1": "L1"}.get(norm, "Linf"),
        eps=eps,
        version="custom",
        attacks=[attack],
        seed=0,
        device="cpu",
    )
    aa.verbose = False
    aa.apgd.n_iter = aa.apgd_targeted.n_iter = 20
    aa.apgd_targeted.n_target_classes = 3
    ref = aa.run_standard_evaluation(x, y)
    return ref[0] if isinstance(ref, tuple) else ref


def test_checkpoints_follow_the_paper() -> None:
    assert sorted(checkpoints(100)) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_dlr_is_the_scaled_margin() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0]])
    assert float(dlr_loss(logits, torch.tensor([0]))) == pytest.approx(-(3 - 1) / (3 - 0))


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.0), ("l1", 2.0)])
def test_as_strong_as_pyautoattack_apgd_and_pgd(setup: Any, norm: str, eps: float) -> None:
    pyautoattack = pytest.importorskip("pyautoattack")
    target, x, y, model = setup
    threat = ThreatModel(norm, eps)  # type: ignore[arg-type]
    ids = [str(i) for i in range(len(y))]
    # pyautoattack's custom version runs 5 restarts of APGD-CE; so does ours here (on L1 at eps 2 one
    # restart of either reads about 23 %, five about 19 %: given the same start both reach the same points)
    ours = APGD(APGDParams(steps=20, restarts=5)).run(target, x, y, threat, rng=_rng(ids))
    assert threat.contains(ours, x).all()
    assert _acc(model, ours, y) <= _acc(model, x, y) - 30.0
    pgd = PGD(PGDParams(steps=20)).run(target, x, y, threat, rng=_rng(ids))
    ref = _pyautoattack(pyautoattack, model, norm, eps, "apgd-ce", x, y)
    assert _acc(model, ours, y) <= _acc(model, ref, y) + 3.0
    assert _acc(model, ours, y) <= _acc(model, pgd, y) + 3.0


def test_rows_do_not_depend_on_the_batching(setup: Any) -> None:
    target, x, y, model = setup
    threat = ThreatModel("linf", 0.1)
    ids = [str(i) for i in range(16)]
    whole = APGD(APGDParams(steps=10)).run(target, x[:16], y[:16], threat, rng=_rng(ids))
    halves = torch.cat(
        [
            APGD(APGDParams(steps=10)).run(target, x[i : i + 8], y[i : i + 8], threat, rng=_rng(ids[i : i + 8]))
            for i in (0, 8)
        ]
    )
    with torch.no_grad():
        assert torch.equal(model(whole).argmax(1), model(halves).argmax(1))
    assert (whole - halves).abs().max() < 1e-4


def test_targeted_dlr_is_the_scaled_margin_toward_the_target() -> None:
    from robbench.attacks.apgd import targeted_dlr_loss

    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0, -2.0]])
    loss = targeted_dlr_loss(torch.tensor([2]))(logits, torch.tensor([0]))
    assert float(loss) == pytest.approx(-(3 - 0) / (3 - (0 + -1) / 2))


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.0)])
def test_apgd_t_as_strong_as_pyautoattack_apgd_t(setup: Any, norm: str, eps: float) -> None:
    """APGD-T (3 targets, 20 steps each) against pyautoattack's APGD-T at the same targets and steps (at 10
    steps pyautoattack's rounding of its checkpoints differs and it was 3 points stronger on Linf); well below
    the clean accuracy; the forward that ranks the targets is counted."""
    pyautoattack = pytest.importorskip("pyautoattack")
    target, x, y, model = setup
    threat = ThreatModel(norm, eps)  # type: ignore[arg-type]
    ids = [str(i) for i in range(len(y))]
    before = target.forwards
    ours = APGD(APGDParams(steps=20, loss="dlr", targets=3)).run(target, x, y, threat, rng=_rng(ids))
    assert target.forwards - before == 1 + 3 * 21  # the ranking forward, then 21 forwards per target
    assert threat.contains(ours, x).all()
    ref = _pyautoattack(pyautoattack, model, norm, eps, "apgd-t", x, y)
    assert _acc(model, ours, y) <= _acc(model, ref, y) + 3.0
    assert _acc(model, ours, y) <= _acc(model, x, y) - 30.0


def test_apgd_t_needs_the_dlr_loss_and_enough_classes() -> None:
    from robbench.errors import SuiteError

    ds = load_dataset("digits")
    ctx = BuildContext(dataset=ds, device=torch.device("cpu"))
    with pytest.raises(SuiteError, match="targeted DLR"):
        APGD.check_params(APGDParams(targets=3), ctx)
    with pytest.raises(SuiteError, match="at most one target per wrong class"):
        APGD.check_params(APGDParams(targets=10, loss="dlr"), ctx)
    APGD.check_params(APGDParams(targets=9, loss="dlr"), ctx)
