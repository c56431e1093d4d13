"""The runner: plan cells, skip finished rows, batch, attack, check containment, judge, write shards.

A *cell* is one (defense, attack, threat); the clean attack is threat-free. A *unit* is a cell
and a list of samples; units are independent and carry their own seeds (derived from the suite
seed, the cell and each sample id), so any split of the work gives the same rows. The runner,
never the attack, judges success with the real defense, and asserts on every sample that the
adversarial image lies in the threat ball and in [0, 1].
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from robbench import __version__, registry
from robbench.attacks.base import Attack
from robbench.components import BuildContext, parse_params
from robbench.data.base import DataSplit, load_dataset
from robbench.defenses.base import Defense
from robbench.errors import AttackContainmentError, DeviceError, ResultsError, RobbenchError
from robbench.faults import fault_report, row_error
from robbench.io import atomic_write_text
from robbench.reproduce import apply_from_env, checkpoint_hashes, deterministic_mode, run_record
from robbench.identity import component_identity, stable_hash
from robbench.results import ResultsDir
from robbench.seeding import SampleRNG, derive_seed
from robbench.suite import AttackSpec, DefenseSpec, Suite, check_suite, read_suite
from robbench.target import Target
from robbench.threat import ThreatModel
from robbench.zoo import model_identity


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu; a CUDA request without CUDA is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {device!r} requested but this machine has no CUDA device (torch {torch.__version__})",
                          hint="use --device cpu, or install a CUDA build of torch on a GPU machine")
    return dev


@dataclass
class Cell:
    id: str
    defense: DefenseSpec
    attack: AttackSpec
    threat: ThreatModel | None
    stochastic: bool
    eot: int
    draws: int
    randomness: str
    defense_hash: str
    #: the EoT the suite asked for, when it was forced to 1 (recorded in the manifest)
    eot_requested: int | None = None
    #: the id the attack's seeds derive from when it differs from ``id`` (a cascaded cell keeps its
    #: non-cascade seeds, so the samples it attacks get exactly the rows a full run gives them)
    rng_id: str | None = None

    @property
    def seed_key(self) -> str:
        return self.rng_id or self.id

    @property
    def label(self) -> str:
        t = self.threat.label if self.threat else "clean"
        return f"{self.defense.display} / {self.attack.id} / {t}"

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id, "defense": self.defense.display, "defense_name": self.defense.name,
            "attack": self.attack.id, "attack_name": self.attack.name, "gradient": self.attack.gradient,
            "randomness": self.randomness, "eot": self.eot, "draws": self.draws, "stochastic": self.stochastic,
            "norm": self.threat.norm if self.threat else "none", "eps": self.threat.eps if self.threat else 0.0,
            "threat": self.threat.id if self.threat else "none", "label": self.label,
            **({"eot_requested": self.eot_requested} if self.eot_requested is not None else {}),
        }


@dataclass
class Unit:
    cell: Cell
    indices: list[int]  # positions in the selected data subset


@dataclass
class RunReport:
    out: Path
    cells: int
    rows_written: int
    rows_skipped: int
    seconds: float
    failures: list[str] = field(default_factory=list)
    #: flagged rows that do not fail the run (a defense's NaN/inf logits; robbench.faults)
    warnings: list[str] = field(default_factory=list)


class Plan:
    """Everything resolved for a suite: data subset, cells, identities. Computes nothing heavy."""

    def __init__(self, suite: Suite, *, suite_text: str = "", data_dir: str | None = None,
                 zoo_dir: str | None = None) -> None:
        check_suite(suite, data_dir=data_dir)
        self.suite = suite
        self.suite_text = suite_text
        self.data_dir = data_dir or suite.data.data_dir
        self.zoo_dir = zoo_dir
        self.dataset = load_dataset(suite.data.dataset, self.data_dir)
        n = self.dataset.size(suite.data.split)
        if suite.data.indices is not None:
            self.sample_positions = list(suite.data.indices)
        else:
            count = suite.data.n_samples or (n - suite.data.offset)
            self.sample_positions = list(range(suite.data.offset, suite.data.offset + count))
        self.classifier_identity = model_identity(suite.classifier) if suite.classifier else None
        self.data_identity = {"dataset": suite.data.dataset, "split": suite.data.split}
        #: warnings about the suite found while planning (EoT forced to 1, ...): `robbench validate`
        #: prints them, the manifest records them
        self.notes: list[str] = []
        self.cells = self._cells()
        self.cascade = None
        if suite.evaluation.cascade:
            from robbench.cascade import Cascade

            self.cascade = Cascade(self.cells, suite.evaluation.scoring)

    def _cells(self) -> list[Cell]:
        s = self.suite
        cells = []
        for d in s.defenses:
            dcls = registry.defenses.get(d.name)
            dparams = parse_params(dcls.Params, d.params, f"defense {d.display}")
            did = component_identity(d.name, dparams, dcls.runtime_params)
            stochastic = bool(dcls.stochastic)
            dhash = stable_hash({"defense": did, "classifier": self.classifier_identity, "data": self.data_identity, "seed": s.seed})
            for a in s.attacks:
                if a.defenses is not None and d.display not in a.defenses:
                    continue
                acls = registry.attacks.get(a.name)
                aparams = parse_params(acls.Params, a.params, f"attack {a.id}")
                aid = component_identity(a.name, aparams, acls.runtime_params)
                threats: list[ThreatModel | None]
                if acls.threat_free:
                    threats = [None]
                else:
                    threats = [t for t in s.threat_models() if a.norms is None or t.norm in a.norms]
                randomness = a.randomness if stochastic else "none"
                eot, why = a.eot, None
                if a.eot > 1:
                    why = (f"defense {d.display!r} is deterministic" if not stochastic
                           else "randomness det fixes the defense's draws" if a.randomness == "det"
                           else f"attack {a.name!r} is gradient-free" if not acls.uses_gradients
                           else "gradient classifier bypasses the defense's randomness" if a.gradient == "classifier"
                           else "a transfer attack takes gradients from its surrogate" if a.surrogate is not None
                           else None)
                    eot = 1 if why else a.eot
                if why:
                    note = f"attack {a.id}: EoT({a.eot}) is pointless on defense {d.display!r} ({why}); k forced to 1 (recorded)"
                    self.notes.append(note)
                    warnings.warn(note, stacklevel=2)
                draws = s.evaluation.draws if (stochastic and randomness == "fresh") else 1
                surrogate = model_identity(a.surrogate) if a.surrogate else None
                for t in threats:
                    ident = {
                        "defense": dhash, "defense_id": d.display, "attack": aid, "attack_id": a.id, "gradient": a.gradient if acls.uses_gradients else "none",
                        "randomness": randomness, "eot": eot, "draws": draws, "surrogate": surrogate,
                        "threat": [t.norm, t.eps] if t else None,
                    }
                    rng_id = None
                    if s.evaluation.generative_precision != "fp32":
                        # its own cell, but the fp32 cell's seeds: the runs differ in arithmetic only
                        rng_id = stable_hash(ident)
                        ident["generative_precision"] = s.evaluation.generative_precision
                    cells.append(Cell(stable_hash(ident), d, a, t, stochastic, eot, draws, randomness, dhash,
                                      a.eot if why else None, rng_id=rng_id))
        return cells

    def manifest(self, device: torch.device, batch_size: int, out: Path) -> dict[str, Any]:
        from robbench.environment import environment

        return {
            "suite_name": self.suite.name,
            "suite": self.suite.model_dump(mode="json"),
            "suite_text": self.suite_text,
            "cells": [c.describe() for c in self.cells],
            "n_samples": len(self.sample_positions),
            "classifier": self.classifier_identity,
            "environment": environment(),
            "device": str(device),
            "batch_size": batch_size,
            "out": str(out),
            "command": " ".join(sys.argv),
            "rerun": f"robbench run {self.suite.name}.yaml --out {out}",
            "notes": list(self.notes),
        }


class Executor:
    """Runs units in this process: builds defenses/attacks once, judges, writes shards."""

    def __init__(self, plan: Plan, results: ResultsDir, device: torch.device, batch_size: int,
                 quiet: bool = False) -> None:
        self.plan = plan
        self.results = results
        self.device = device
        self.batch_size = batch_size
        self.quiet = quiet
        self._data: DataSplit | None = None
        self._ctx: BuildContext | None = None
        self._defenses: dict[str, Defense] = {}
        self._surrogates: dict[str, torch.nn.Module] = {}
        self.failures: list[str] = []
        apply_from_env()  # a worker process of a --deterministic run
        #: run options applied to the models (robbench.accel): {"compile": bool, "channels_last": bool}
        self.accel: dict[str, bool] = {}

    @property
    def data(self) -> DataSplit:
        if self._data is None:
            full = self.plan.dataset.load(self.plan.suite.data.split)
            self._data = full.subset(self.plan.sample_positions)
        return self._data

    @property
    def ctx(self) -> BuildContext:
        if self._ctx is None:
            ctx = BuildContext(dataset=self.plan.dataset, device=self.device, suite_seed=self.plan.suite.seed,
                               zoo_dir=self.plan.zoo_dir)
            if self.plan.suite.classifier is not None:
                ctx.classifier = ctx.model(self.plan.suite.classifier)
                if self.accel:
                    from robbench.accel import prepare_model

                    prepare_model(ctx.classifier, **self.accel)
            self._ctx = ctx
        return self._ctx

    def defense(self, spec: DefenseSpec) -> Defense:
        if spec.display not in self._defenses:
            cls = registry.defenses.get(spec.name)
            params = parse_params(cls.Params, spec.params, f"defense {spec.display}")
            d: Defense = cls(params, self.ctx)
            d.to(self.device).eval()
            for p in d.parameters():
                p.requires_grad_(False)
            from robbench.accel import prepare_defense

            prepare_defense(d, classifier=self.ctx.classifier, precision=self.plan.suite.evaluation.generative_precision,
                            **self.accel)
            self._defenses[spec.display] = d
        return self._defenses[spec.display]

    def surrogate(self, spec: AttackSpec) -> torch.nn.Module | None:
        if spec.surrogate is None:
            return None
        key = repr(spec.surrogate)
        if key not in self._surrogates:
            self._surrogates[key] = self.ctx.model(spec.surrogate)
        return self._surrogates[key]

    # ---- judging ---------------------------------------------------------------------------
    def _judge_rng(self, cell: Cell, ids: list[str], draw: int) -> SampleRNG:
        return SampleRNG.for_samples(ids, self.plan.suite.seed, cell.defense_hash, "judge", draw, device=self.device)

    @torch.no_grad()
    def judge(self, defense: Defense, cell: Cell, x: Tensor, ids: list[str]) -> tuple[Tensor, Tensor]:
        """Predictions (draws, B) and a finite-output mask (B,) of the real defense on ``x``."""
        preds, finite = [], torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        for j in range(cell.draws):
            rng = self._judge_rng(cell, ids, j) if cell.stochastic else None
            logits = defense(x, rng)
            finite &= torch.isfinite(logits).all(dim=1)
            preds.append(logits.argmax(1))
        return torch.stack(preds), finite

    # ---- one unit ------------------------------------------------------------------------------
    def run_unit(self, unit: Unit, progress: Any = None) -> int:
        cell = unit.cell
        suite = self.plan.suite
        defense = self.defense(cell.defense)
        acls = registry.attacks.get(cell.attack.name)
        attack: Attack = acls(parse_params(acls.Params, cell.attack.params, f"attack {cell.attack.id}"))
        rows: list[dict[str, Any]] = []
        data = self.data
        todo, skipped = unit.indices, {}
        if self.plan.cascade is not None:  # attack only the points still robust (robbench.cascade)
            from robbench.cascade import split_unit

            todo, skipped = split_unit(self.plan.cascade, self.results, cell, unit.indices, data.ids, suite.seed)
            if skipped and progress is not None:
                progress(len(skipped))
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start : start + self.batch_size]
            x = data.x[idx].to(self.device)
            y = data.y[idx].to(self.device)
            ids = [data.ids[i] for i in idx]
            rows.extend(self._run_batch(cell, defense, attack, x, y, ids, idx))
            if progress is not None:
                progress(len(idx))
        if skipped:
            by_id = {r["sample_id"]: r for r in rows} | {r["sample_id"]: r for r in skipped.values()}
            rows = [by_id[data.ids[i]] for i in unit.indices]
        first = self.plan.sample_positions[unit.indices[0]]
        name = f"{first:08d}-{stable_hash([rows[i]['sample_id'] for i in range(len(rows))], 8)}"
        self.results.write_shard(cell.id, name, rows)
        # flagged rows (robbench.faults) are reported by run_suite from the stored rows, resumed ones included
        return len(rows)

    def _run_batch(self, cell: Cell, defense: Defense, attack: Attack, x: Tensor, y: Tensor,
                   ids: list[str], idx: list[int]) -> list[dict[str, Any]]:
        suite = self.plan.suite
        b = x.shape[0]
        t0 = time.perf_counter()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        # defense randomness seen by the attack: det = the judge's draw-0 seeds, re-seeded each forward
        if cell.stochastic:
            attack_def_rng = (self._judge_rng(cell, ids, 0) if cell.randomness == "det"
                              else SampleRNG.for_samples(ids, suite.seed, cell.seed_key, "attack-defense", device=self.device))
        else:
            attack_def_rng = None
        if cell.stochastic and cell.randomness == "det":
            self._check_det(defense, cell, x, attack_def_rng)
        target = Target(defense, gradient=cell.attack.gradient, randomness="det" if cell.randomness == "det" else "fresh",
                        rng=attack_def_rng, eot=cell.eot, surrogate=self.surrogate(cell.attack))
        evals0 = defense.evals
        attack_rng = SampleRNG.for_samples(ids, suite.seed, cell.seed_key, "attack", device=self.device)
        attack.last_evals = None
        x_adv = attack.run(target, x, y, cell.threat, rng=attack_rng).detach()
        model_evals = (defense.evals - evals0) / b
        if attack.last_evals is not None:  # per-sample counts (third-party attacks run per sample)
            fwd, bwd, mev = (v.tolist() for v in attack.last_evals)
        else:
            fwd, bwd, mev = [target.forwards] * b, [target.backwards] * b, [model_evals] * b
        if cell.threat is not None:
            in_ball = cell.threat.contains(x_adv, x)
            norms = cell.threat.norm_of(x_adv, x)
        else:
            in_ball = torch.ones(b, dtype=torch.bool, device=x.device) & torch.isfinite(x_adv.flatten(1)).all(1)
            in_ball &= ((x_adv - x).flatten(1).abs().amax(1) == 0)
            norms = torch.zeros(b, device=x.device)
        linf = (x_adv - x).flatten(1).abs().amax(1)
        image_finite = torch.isfinite(x_adv.flatten(1)).all(1)
        evals1 = defense.evals
        clean_preds, clean_finite = self.judge(defense, cell, x, ids)
        adv_preds, adv_finite = self.judge(defense, cell, torch.where(in_ball.view(-1, 1, 1, 1), x_adv, x), ids)
        # the row's cost: the attack's model evaluations plus the judge's (clean and adversarial, every draw)
        judge_evals = (defense.evals - evals1) / b
        mev = [m + judge_evals for m in mev]
        trace = attack.last_trace
        # a few whole-batch device->host copies instead of per-sample reads (each a GPU sync); they
        # also wait for the device, so `seconds` covers the GPU work
        yl, ib, nl, ll = y.tolist(), in_ball.tolist(), norms.tolist(), linf.tolist()
        imf, cf, af = image_finite.tolist(), clean_finite.tolist(), adv_finite.tolist()
        cp, ap = clean_preds.T.tolist(), adv_preds.T.tolist()  # (B, draws)
        tr = trace.float().T.tolist() if trace is not None else None
        fwd = fwd.tolist() if isinstance(fwd, Tensor) else fwd
        bwd = bwd.tolist() if isinstance(bwd, Tensor) else bwd
        seconds = (time.perf_counter() - t0) / b
        peak = torch.cuda.max_memory_allocated(self.device) / 2**20 if self.device.type == "cuda" else None
        # per-cell constants, formatted once (formatting eps as a fraction is not free)
        t_label = cell.threat.label if cell.threat else None
        t_norm, t_eps = (cell.threat.norm, cell.threat.eps) if cell.threat else ("none", 0.0)
        t_id = cell.threat.id if cell.threat else "none"
        rows = []
        for i in range(b):
            err = row_error(attack=cell.attack.id, defense=cell.defense.display, threat=t_label, image_finite=imf[i],
                            in_ball=ib[i], clean_logits_finite=cf[i], adv_logits_finite=af[i], norm=nl[i])
            cc = [p == yl[i] and cf[i] for p in cp[i]]
            # robust only where the defense's logits were finite on both inputs (a flagged row never counts)
            ac = [p == yl[i] and af[i] and cf[i] and ib[i] for p in ap[i]]
            rows.append({
                "cell": cell.id, "sample_id": ids[i], "sample_index": self.plan.sample_positions[idx[i]],
                "label": yl[i], "defense": cell.defense.display, "defense_name": cell.defense.name,
                "stochastic": cell.stochastic, "attack": cell.attack.id, "attack_name": cell.attack.name,
                "gradient": cell.attack.gradient, "randomness": cell.randomness, "eot": cell.eot,
                "norm": t_norm, "eps": t_eps, "threat": t_id,
                "seed": attack_rng.seeds[i], "draws": cell.draws,
                "clean_pred": cp[i][0], "clean_correct": cc[0], "clean_correct_draws": cc,
                "adv_pred": ap[i][0], "adv_correct": ac[0], "adv_correct_draws": ac,
                "pert_norm": nl[i], "pert_linf": ll[i], "in_ball": ib[i],
                "forward_evals": int(fwd[i]), "backward_evals": int(bwd[i]), "model_evals": float(mev[i]),
                "seconds": seconds, "peak_mem_mb": peak,
                "loss_trace": tr[i] if tr is not None else None,
                "error": err,
            })
        return rows

    def _check_det(self, defense: Defense, cell: Cell, x: Tensor, rng: SampleRNG | None) -> None:
        """det mode: two forwards (purifier and classifier) with the attacker-known seeds must agree exactly."""
        assert rng is not None
        with torch.no_grad():
            rng.reset()
            a = defense(x, rng)
            rng.reset()
            b = defense(x, rng)
        if not torch.equal(a, b):
            raise RobbenchError(
                f"cell {cell.label}: defense {cell.defense.display!r} is not deterministic with its seeds fixed "
                f"(two forwards differ by up to {float((a - b).abs().max()):.3g})",
                hint="the defense draws randomness outside the generator it is given; fix the defense",
            )


def plan_units(plan: Plan, done: dict[str, set[str]], shard_size: int) -> list[Unit]:
    """Units for every (cell, sample) not yet stored, in chunks of ``shard_size`` samples."""
    ids = [f"{plan.dataset.name}/{plan.suite.data.split}/{p}" for p in plan.sample_positions]
    units = []
    for cell in plan.cells:
        have = done.get(cell.id, set())
        missing = [i for i, sid in enumerate(ids) if sid not in have]
        for s in range(0, len(missing), shard_size):
            units.append(Unit(cell, missing[s : s + shard_size]))
    return units


def default_out(suite: Suite) -> Path:
    return Path("results") / suite.name


def prepare(suite_path: str | Path, *, out: str | Path | None = None, data_dir: str | None = None,
            zoo_dir: str | None = None) -> tuple[Plan, ResultsDir]:
    suite, text = read_suite(suite_path)
    plan = Plan(suite, suite_text=text, data_dir=data_dir, zoo_dir=zoo_dir)
    return plan, ResultsDir(out or default_out(suite))


def _guard_results_dir(rd: ResultsDir, suite: Suite, fresh: bool) -> None:
    if rd.root.exists() and not rd.root.is_dir():
        raise ResultsError(f"--out {rd.root} exists and is not a directory", hint="choose another --out")
    manifest = rd.read_manifest() if rd.root.is_dir() else None
    # a run killed before its first manifest write leaves only .lock (and perhaps suite.yaml, rows/)
    ours = {".lock", "suite.yaml", "rows", "manifest.json"}
    stale = (".manifest.json.", ".suite.yaml.")  # temp files of a killed atomic write
    if rd.root.is_dir() and manifest is None and any(p.name not in ours and not p.name.startswith(stale)
                                                     for p in rd.root.iterdir()):
        raise ResultsError(f"--out {rd.root} exists, is not empty and is not a robbench results directory",
                           hint="choose another --out; robbench never writes into foreign folders")
    if manifest is not None and manifest.get("suite_name") != suite.name:
        raise ResultsError(f"{rd.root} holds results of suite {manifest.get('suite_name')!r}, not {suite.name!r}",
                           hint="choose another --out")


def run_suite(suite_path: str | Path, *, out: str | Path | None = None, device: str = "auto",
              batch_size: int | None = None, fresh: bool = False, data_dir: str | None = None,
              zoo_dir: str | None = None, shard_size: int | None = None, quiet: bool = False,
              threads: int | None = None, deterministic: bool = False, execution: Any = None,
              checks: bool = True, **exec_kwargs: Any) -> RunReport:
    """Run a suite; resumes by default (finished rows are skipped). Returns a :class:`RunReport`.

    ``deterministic`` turns on torch's deterministic algorithms for this run (recorded in the
    manifest; see :mod:`robbench.reproduce`).

    ``execution`` (an :class:`robbench.executors.ExecOptions` or a dict) and ``exec_kwargs`` (its
    fields: ``executor``, ``workers``, ``shards``, ``cluster``, Slurm options, ``max_retries``,
    ``compile``, ``channels_last``) choose where the units run; see :mod:`robbench.executors`.

    ``checks`` runs :mod:`robbench.checks` after the units and records them in ``manifest["checks"]``
    (the compute checks only with the local executor; with others, the row checks alone).
    """
    from robbench.executors import clear_failed, exec_options, execute

    opts = exec_options(execution, **exec_kwargs)
    # the submitit coordinator may sit on a login node without the jobs' device: jobs resolve it
    dev = resolve_device(device) if opts.executor == "local" else torch.device("cpu")
    plan, rd = prepare(suite_path, out=out, data_dir=data_dir, zoo_dir=zoo_dir)
    _guard_results_dir(rd, plan.suite, fresh)
    if threads:
        torch.set_num_threads(threads)
    bs = batch_size or plan.suite.evaluation.batch_size
    shard = shard_size or max(bs, 64)
    start = time.perf_counter()
    with deterministic_mode(deterministic), rd.lock():
        if fresh and rd.rows_dir.exists():
            import shutil

            shutil.rmtree(rd.rows_dir)
        clear_failed(rd)  # units that failed last time run again
        done = rd.done_keys()
        units = plan_units(plan, done, shard)
        total_cells = len(plan.cells) * len(plan.sample_positions)
        todo = sum(len(u.indices) for u in units)
        manifest = plan.manifest(dev, bs, rd.root)
        manifest.update(status="running", started=datetime.now(timezone.utc).isoformat(),
                        **run_record(plan, rd.root, device=device, deterministic=deterministic, shard_size=shard,
                                     threads=threads, batch_size=bs))
        rd.write_manifest(manifest)
        if plan.suite_text:
            atomic_write_text(rd.root / "suite.yaml", plan.suite_text)
        ex = Executor(plan, rd, dev, bs, quiet=quiet)
        if opts.compile or opts.channels_last:
            ex.accel = {"compile": opts.compile, "channels_last": opts.channels_last}
        manifest.update(execution={**opts.model_dump(), "device_requested": device})
        written = 0
        try:
            rep = execute(ex, units, opts, device=device, threads=threads, quiet=quiet, checks=checks)
            written = rep.written
            ex.failures[:] = list(dict.fromkeys(ex.failures + rep.failures))
            manifest["execution"].update(rep.describe())
        except RobbenchError as exc:  # a user-fixable problem (full disk, cluster, ...): exit 2, rows kept
            _record_abort(rd, manifest, exc, start)
            raise
        faults, warns = fault_report(rd.read_rows(repair=True, cells={c.id for c in plan.cells}),
                                     {c.id: c.label for c in plan.cells})
        ex.failures[:] = list(dict.fromkeys(ex.failures + faults))
        manifest.update(warnings=warns, checkpoints=checkpoint_hashes(plan.suite, plan.zoo_dir))
        if checks:
            from robbench.checks import run_checks

            manifest["checks"] = run_checks(plan, ex, compute=opts.executor == "local", computed=rep.checks)
        manifest.update(status="complete" if not ex.failures else "failed", failures=ex.failures,
                        finished=datetime.now(timezone.utc).isoformat(),
                        seconds=round(time.perf_counter() - start, 2))
        rd.write_manifest(manifest)
    return RunReport(rd.root, len(plan.cells), written, total_cells - todo, time.perf_counter() - start, ex.failures,
                     warns)


def _record_abort(rd: ResultsDir, manifest: dict[str, Any], exc: RobbenchError, start: float) -> None:
    """Best effort: mark the manifest aborted (the disk may be full; the error itself is what matters)."""
    manifest.update(status="aborted", failures=[exc.message], finished=datetime.now(timezone.utc).isoformat(),
                    seconds=round(time.perf_counter() - start, 2))
    try:
        rd.write_manifest(manifest)
    except (RobbenchError, OSError):
        pass
