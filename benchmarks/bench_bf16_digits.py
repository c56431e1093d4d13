"""The accuracy (and CPU time) effect of ``evaluation.generative_precision: bf16`` on a digits suite.

One digits suite with the generative purifiers (PurSAMERE on ``digits-score``, ADP on
``digits-score``, DiffPure on ``digits-diffusion``) under clean and BPDA10-det, run twice into fresh
results directories: fp32 (default) and bf16 (the score / diffusion networks under bf16 autocast; the
classifier and all purifier arithmetic in fp32). Printed per cell: accuracy fp32 vs bf16, the
difference, how many samples changed their prediction, and the CPU time of each run.

``--suite PATH`` runs a suite file instead (e.g. ``suites/quickstart.yaml``, the digits suite with all
the generative purifiers), twice, with ``evaluation.generative_precision`` set to fp32 and to bf16.

Run: ``python benchmarks/bench_bf16_digits.py --threads 1 [--n 128 | --suite suites/quickstart.yaml]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from _common import load_average

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ROBBENCH_ZOO_DIR", str(ROOT / ".robbench-cache" / "zoo"))


def suite(n: int, precision: str) -> dict:  # type: ignore[type-arg]
    from robbench.core import registry

    defenses = []
    have = set(registry.defenses.names())
    if "pursamere" in have:
        defenses.append({"name": "pursamere", "params": {"score_model": "digits-score", "eps_pur": 0.1}})
    if "adp" in have:
        defenses.append({"name": "adp", "params": {"score_model": "digits-score"}})
    if "diffpure" in have:
        defenses.append({"name": "diffpure", "params": {"diffusion_model": "digits-diffusion", "steps": 10}})
    return {
        "name": f"bf16-{precision}",
        "seed": 0,
        "data": {"dataset": "digits", "split": "test", "n_samples": n},
        "classifier": "digits-cnn",
        "threats": [{"norm": "linf", "eps": 0.1}],
        "defenses": defenses,
        "attacks": [
            {"id": "clean", "name": "clean"},
            {"id": "BPDA10-det", "name": "pgd", "params": {"steps": 10}, "gradient": "bpda", "randomness": "det"},
        ],
        "evaluation": {"batch_size": 64, "draws": 1, "generative_precision": precision},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--suite", type=Path, default=None, help="a suite YAML to run at fp32 and bf16 instead")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from robbench.api import run
    from robbench.results.store import ResultsDir

    print(f"load average at start: {load_average()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    frames, cpu = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "bf16"):
            path = Path(tmp) / f"{precision}.yaml"
            if args.suite is not None:
                spec = yaml.safe_load(args.suite.read_text())
                spec["evaluation"] = dict(spec.get("evaluation") or {}, generative_precision=precision)
            else:
                spec = suite(args.n, precision)
            path.write_text(yaml.safe_dump(spec, sort_keys=False))
            t0 = time.process_time()
            rep = run(path, out=Path(tmp) / precision, quiet=True)
            cpu[precision] = time.process_time() - t0
            if rep.failures:
                print(f"{precision}: failures {rep.failures}")
            frames[precision] = ResultsDir(Path(tmp) / precision).read_rows()
    key = ["defense", "attack", "threat", "sample_id"]
    a = frames["fp32"].set_index(key).sort_index()
    b = frames["bf16"].set_index(key).sort_index()
    what = (
        f"suite {args.suite}"
        if args.suite is not None
        else f"digits, n={args.n}, Linf 0.1 (see the suite in this script)"
    )
    print(f"{what}; accuracy % (stochastic defenses: as judged, worst case over draws)")
    print(f"  {'defense':<11} {'attack':<11} {'threat':<10} {'fp32':>6} {'bf16':>6} {'diff':>6}  changed predictions")
    for (d, att, thr), g in a.groupby(level=["defense", "attack", "threat"]):
        gb = b.loc[g.index]
        col = "clean_correct" if att == "clean" else "adv_correct"
        pred = "clean_pred" if att == "clean" else "adv_pred"
        fa, fb = 100 * g[col].mean(), 100 * gb[col].mean()
        changed = int((g[pred] != gb[pred]).sum())
        print(f"  {d:<11} {att:<11} {thr:<10} {fa:6.1f} {fb:6.1f} {fb - fa:+6.1f}  {changed}/{len(g)}")
    print(
        f"  CPU time of the run: fp32 {cpu['fp32']:.1f} s, bf16 {cpu['bf16']:.1f} s "
        f"(bf16 / fp32 = {cpu['bf16'] / cpu['fp32']:.2f})"
    )
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
