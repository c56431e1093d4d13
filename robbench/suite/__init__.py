"""The YAML suite: its pydantic models and the strict loader. Plain data: no torch, no components
(:mod:`robbench.run.validate` resolves and checks a suite against the registries before a run)."""

from robbench.suite.load import parse_suite, read_suite
from robbench.suite.model import AttackSpec, DataSpec, DefenseSpec, Evaluation, Reported, Suite, ThreatSpec

__all__ = [
    "AttackSpec",
    "DataSpec",
    "DefenseSpec",
    "Evaluation",
    "Reported",
    "Suite",
    "ThreatSpec",
    "parse_suite",
    "read_suite",
]
