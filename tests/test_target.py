"""Target semantics: det/fresh randomness through the module view, sub-targets, pass counting, EoT."""

from __future__ import annotations

import torch

from robbench.attacks.target import Target
from robbench.core.components import BuildContext
from robbench.core.seeding import SampleRNG
from robbench.data.base import load_dataset
from robbench.defenses.quantize import Quantize, QuantizeParams
from robbench.defenses.random_noise import RandomNoise, RandomNoiseParams


def _setup(digits_classifier, n: int = 6):  # type: ignore[no-untyped-def]
    ds = load_dataset("digits")
    data = ds.load("test")
    ctx = BuildContext(dataset=ds, device=torch.device("cpu"), classifier=digits_classifier)
    noise = RandomNoise(RandomNoiseParams(sigma=0.3), ctx).eval()
    return noise, ctx, data.x[:n], data.y[:n], [f"s{i}" for i in range(n)]


def test_module_view_det_is_the_judges_draw_and_fresh_draws_anew(digits_classifier) -> None:  # type: ignore[no-untyped-def]
    noise, _, x, _, ids = _setup(digits_classifier)
    judge = SampleRNG.for_samples(ids, 0, "judge", 0)
    with torch.no_grad():
        judged = noise(x, SampleRNG.for_samples(ids, 0, "judge", 0))
        det = Target(noise, randomness="det", rng=judge).as_module()
        assert torch.equal(det(x), judged) and torch.equal(det(x), judged)
        fresh = Target(noise, randomness="fresh", rng=SampleRNG.for_samples(ids, 0, "attack")).as_module()
        assert not torch.equal(fresh(x), fresh(x))
        # a subset call cannot know its samples: det still gives the same draws for the same call
        assert torch.equal(det(x[:2]), det(x[:2]))


def test_select_keeps_each_samples_streams_and_counts(digits_classifier) -> None:  # type: ignore[no-untyped-def]
    noise, _, x, y, ids = _setup(digits_classifier)
    rng = SampleRNG.for_samples(ids, 0, "judge", 0)
    target = Target(noise, randomness="det", rng=rng)
    with torch.no_grad():
        whole = target.as_module()(x)
    for i in range(len(ids)):
        sub = target.select([i])
        assert sub.rng is not None and sub.rng.seeds == [rng.seeds[i]]
        xi = x[i : i + 1].clone().requires_grad_(True)
        logits = sub.as_module()(xi)
        assert torch.allclose(logits, whole[i : i + 1], atol=1e-5)
        torch.nn.functional.cross_entropy(logits, y[i : i + 1]).backward()
        assert (sub.forwards, sub.backwards) == (1, 1)
    assert target.forwards == 1 and target.backwards == 0


def test_eot_select_takes_the_samples_draws_and_checkpoint_switch(digits_classifier) -> None:  # type: ignore[no-untyped-def]
    noise, ctx, x, y, ids = _setup(digits_classifier)
    t = Target(noise, randomness="fresh", rng=SampleRNG.for_samples(ids, 0, "a"), eot=4)
    sub = t.select([2, 4])
    assert sub.eot == 4 and sub._eot_rng is not None and len(sub._eot_rng) == 8
    assert sub._eot_rng.seeds[:2] == [t._eot_rng.seeds[2], t._eot_rng.seeds[4]]  # type: ignore[union-attr]
    _loss, grad, _ = sub.loss_grad(x[[2, 4]], y[[2, 4]])
    assert grad.shape == (2, 1, 8, 8) and sub.forwards == 4 and sub.backwards == 4
    q = Quantize(QuantizeParams(levels=4), ctx)
    Target(q, gradient="full", checkpoint=False)
    assert q._checkpoint is False
    Target(q, gradient="full")
    assert q._checkpoint is True
