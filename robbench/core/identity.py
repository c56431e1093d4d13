"""Identities: a stable hash of exactly what changes a component's results.

Batch size, device, progress, output paths and other runtime settings never enter a hash; the
results version (:data:`robbench.RESULTS_VERSION`) always does, so a change that alters numbers
invalidates stored rows instead of mixing them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hex digest of the canonical JSON of ``obj``."""
    from robbench import RESULTS_VERSION

    text = json.dumps({"v": RESULTS_VERSION, "obj": obj}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def component_identity(name: str, params: Any, runtime: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Name plus the parameters that affect results (defaults filled in, runtime ones dropped, and those
    of ``Params.identity_if_set`` dropped while at their default)."""
    dumped = params.model_dump(mode="json") if hasattr(params, "model_dump") else dict(params)
    late: frozenset[str] = getattr(params, "identity_if_set", frozenset())
    fields = getattr(type(params), "model_fields", {})
    at_default = {k for k in late if k in fields and getattr(params, k) == fields[k].default}
    return {"name": name, "params": {k: v for k, v in sorted(dumped.items()) if k not in runtime | at_default}}


def sample_id(dataset: str, split: str, index: int) -> str:
    """The stable id of a sample: ``dataset/split/index`` (rows, seeds and resume are keyed by it)."""
    return f"{dataset}/{split}/{index}"
