"""Every registered attack runs with its ``example_params`` on digits, on every norm it declares.

A family entry (``torchattacks``) is exercised through its ``example_member`` on the fake
torchattacks module of tests/test_torchattacks_adapter.py (the real package is not installed here).
"""

from __future__ import annotations

import sys

import pytest
import torch

from robbench.attacks.target import Target
from robbench.core import registry
from robbench.core.components import BuildContext, NoParams, parse_params
from robbench.core.seeding import SampleRNG
from robbench.core.threat import ThreatModel
from robbench.data.base import load_dataset
from robbench.defenses.none import NoDefense
from tests.test_torchattacks_adapter import _fake_torchattacks

EPS = {"linf": 0.1, "l2": 1.0, "l1": 4.0}


@pytest.mark.parametrize("name", registry.attacks.names())
def test_attack_runs_with_example_params(name: str, digits_classifier, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    cls = registry.attacks.get(name)
    if hasattr(cls, "family_member"):
        monkeypatch.setitem(sys.modules, "torchattacks", _fake_torchattacks())
        cls = registry.attacks.get(f"{name}.{cls.example_member}")
    ds = load_dataset("digits")
    data = ds.load("test")
    ctx = BuildContext(dataset=ds, device=torch.device("cpu"), classifier=digits_classifier)
    params = parse_params(cls.Params, dict(cls.example_params), f"{name}.example_params")
    cls.check_params(params, ctx)
    x, y = data.x[:4], data.y[:4]
    rng = SampleRNG.for_samples("abcd", 0)
    defense = NoDefense(NoParams(), ctx).eval()
    threats = [None] if cls.threat_free else [ThreatModel(n, EPS[n]) for n in sorted(cls.norms)]  # type: ignore[arg-type]
    for threat in threats:
        attack = cls(params)
        x_adv = attack.run(Target(defense), x, y, threat, rng=rng)
        assert x_adv.shape == x.shape and torch.isfinite(x_adv).all()
        if threat is None:
            assert torch.equal(x_adv, x)
        else:
            assert threat.contains(x_adv, x).all(), (name, threat)
        if attack.last_evals is not None:
            assert attack.last_evals[0].shape == (4,)
