"""The YAML suite: its pydantic models (torch-free), the strict loader, and the checks that resolve
every name, parameter, data set and model before any compute."""

from robbench.suite.check import check_suite, load_suite
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
    "check_suite",
    "load_suite",
    "parse_suite",
    "read_suite",
]
