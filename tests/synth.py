"""Results directories with chosen per-sample outcomes, written through the real ResultsDir.

The table / compare / plot tests need exact, known outcomes (stochastic draws, reported numbers,
discordant pairs) that a tiny digits run cannot produce on demand. The suite part of the manifest
goes through the real Suite model, the rows through the real parquet schema and shard writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robbench.core.identity import stable_hash
from robbench.core.threat import ThreatModel
from robbench.results.store import ResultsDir
from robbench.suite.model import Suite


def cell(
    defense: str,
    attack: str,
    norm: str,
    eps: float,
    adv: list[Any],
    *,
    clean: list[Any] | None = None,
    stochastic: bool = False,
    randomness: str | None = None,
    trace: list[list[float]] | None = None,
    salt: str = "",
) -> dict[str, Any]:
    """One cell: ``adv[i]`` is sample i's correctness (a bool, or a list of per-draw bools)."""
    return {
        "defense": defense,
        "attack": attack,
        "norm": norm,
        "eps": eps,
        "adv": adv,
        "clean": clean,
        "stochastic": stochastic,
        "randomness": randomness or ("fresh" if stochastic else "none"),
        "trace": trace,
        "salt": salt,
    }


def write_results(
    root: Path, suite: dict[str, Any], cells: list[dict[str, Any]], *, status: str = "complete", dataset: str = "digits"
) -> Path:
    """Write manifest.json and one shard per cell under ``root``; returns ``root``."""
    s = Suite.model_validate(suite)
    rd = ResultsDir(root)
    described = []
    n_samples = 0
    for c in cells:
        threat = ThreatModel(c["norm"], c["eps"]) if c["norm"] != "none" else None  # type: ignore[arg-type]
        cid = stable_hash({"d": c["defense"], "a": c["attack"], "t": [c["norm"], c["eps"]], "salt": c["salt"]})
        draws = [v if isinstance(v, list) else [bool(v)] for v in c["adv"]]
        cleans = [v if isinstance(v, list) else [bool(v)] for v in (c["clean"] or [True] * len(draws))]
        n_samples = max(n_samples, len(draws))
        described.append(
            {
                "id": cid,
                "defense": c["defense"],
                "attack": c["attack"],
                "norm": c["norm"],
                "eps": c["eps"],
                "stochastic": c["stochastic"],
                "randomness": c["randomness"],
                "draws": len(draws[0]),
                "threat": threat.id if threat else "none",
                "defense_name": c["defense"],
                "attack_name": c["attack"],
                "gradient": "full",
                "eot": 1,
                "label": f"{c['defense']} / {c['attack']} / {threat.label if threat else 'clean'}",
            }
        )
        rows = []
        for i, (adv, cl) in enumerate(zip(draws, cleans, strict=True)):
            rows.append(
                {
                    "cell": cid,
                    "sample_id": f"{dataset}/test/{i}",
                    "sample_index": i,
                    "label": i % 10,
                    "defense": c["defense"],
                    "defense_name": c["defense"],
                    "stochastic": c["stochastic"],
                    "attack": c["attack"],
                    "attack_name": c["attack"],
                    "gradient": "full",
                    "randomness": c["randomness"],
                    "eot": 1,
                    "norm": c["norm"],
                    "eps": float(c["eps"]),
                    "threat": threat.id if threat else "none",
                    "seed": i,
                    "draws": len(adv),
                    "clean_pred": 0,
                    "clean_correct": bool(cl[0]),
                    "clean_correct_draws": [bool(v) for v in cl],
                    "adv_pred": 0,
                    "adv_correct": bool(adv[0]),
                    "adv_correct_draws": [bool(v) for v in adv],
                    "pert_norm": 0.0,
                    "pert_linf": 0.0,
                    "in_ball": True,
                    "forward_evals": 1,
                    "backward_evals": 0,
                    "model_evals": 1.0,
                    "seconds": 0.001,
                    "peak_mem_mb": None,
                    "loss_trace": c["trace"][i] if c["trace"] else None,
                    "error": None,
                }
            )
        rd.write_shard(cid, "00000000-synth", rows)
    rd.write_manifest(
        {
            "suite_name": s.name,
            "suite": s.model_dump(mode="json"),
            "cells": described,
            "n_samples": n_samples,
            "status": status,
            "checks": [],
        }
    )
    return root


def bools(n_true: int, n: int) -> list[bool]:
    """``n`` outcomes, the first ``n_true`` correct."""
    return [i < n_true for i in range(n)]
