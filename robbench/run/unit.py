"""The runner: plan cells, skip finished rows, batch, attack, check containment, judge, write shards.

A *cell* is one (defense, attack, threat); the clean attack is threat-free. A *unit* is a cell
and a list of samples; units are independent and carry their own seeds (derived from the suite
seed, the cell and each sample id), so any split of the work gives the same rows. The runner,
never the attack, judges success with the real defense, and asserts on every sample that the
adversarial image lies in the threat ball and in [0, 1].
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from robbench.attacks.base import Attack
from robbench.attacks.target import Target
from robbench.core import registry
from robbench.core.components import BuildContext, parse_params
from robbench.core.identity import stable_hash
from robbench.core.seeding import SampleRNG
from robbench.data.base import DataSplit
from robbench.defenses.base import Defense
from robbench.errors import RobbenchError
from robbench.results.store import ResultsDir
from robbench.run.determinism import apply_from_env
from robbench.run.faults import row_error
from robbench.run.plan import Cell, Plan, Unit
from robbench.suite.model import AttackSpec, DefenseSpec


class Executor:
    """Runs units in this process: builds defenses/attacks once, judges, writes shards."""

    def __init__(
        self, plan: Plan, results: ResultsDir, device: torch.device, batch_size: int, quiet: bool = False
    ) -> None:
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
        #: run options applied to the models (robbench.run.accel): {"compile": bool, "channels_last": bool}
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
            ctx = BuildContext(
                dataset=self.plan.dataset,
                device=self.device,
                suite_seed=self.plan.suite.seed,
                zoo_dir=self.plan.zoo_dir,
            )
            if self.plan.suite.classifier is not None:
                ctx.classifier = ctx.model(self.plan.suite.classifier)
                if self.accel:
                    from robbench.run.accel import prepare_model

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
            from robbench.run.accel import prepare_defense

            prepare_defense(
                d,
                classifier=self.ctx.classifier,
                precision=self.plan.suite.evaluation.generative_precision,
                **self.accel,
            )
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
        if self.plan.cascade is not None:  # attack only the points still robust (robbench.run.cascade)
            from robbench.run.cascade import split_unit

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
        # flagged rows (robbench.run.faults) are reported by run_suite from the stored rows, resumed ones included
        return len(rows)

    def _run_batch(
        self, cell: Cell, defense: Defense, attack: Attack, x: Tensor, y: Tensor, ids: list[str], idx: list[int]
    ) -> list[dict[str, Any]]:
        suite = self.plan.suite
        b = x.shape[0]
        t0 = time.perf_counter()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        # defense randomness seen by the attack: det = the judge's draw-0 seeds, re-seeded each forward
        if cell.stochastic:
            attack_def_rng = (
                self._judge_rng(cell, ids, 0)
                if cell.randomness == "det"
                else SampleRNG.for_samples(ids, suite.seed, cell.seed_key, "attack-defense", device=self.device)
            )
        else:
            attack_def_rng = None
        if cell.stochastic and cell.randomness == "det":
            self._check_det(defense, cell, x, attack_def_rng)
        target = Target(
            defense,
            gradient=cell.attack.gradient,
            randomness="det" if cell.randomness == "det" else "fresh",
            rng=attack_def_rng,
            eot=cell.eot,
            surrogate=self.surrogate(cell.attack),
        )
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
            in_ball &= (x_adv - x).flatten(1).abs().amax(1) == 0
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
            err = row_error(
                attack=cell.attack.id,
                defense=cell.defense.display,
                threat=t_label,
                image_finite=imf[i],
                in_ball=ib[i],
                clean_logits_finite=cf[i],
                adv_logits_finite=af[i],
                norm=nl[i],
            )
            cc = [p == yl[i] and cf[i] for p in cp[i]]
            # robust only where the defense's logits were finite on both inputs (a flagged row never counts)
            ac = [p == yl[i] and af[i] and cf[i] and ib[i] for p in ap[i]]
            rows.append(
                {
                    "cell": cell.id,
                    "sample_id": ids[i],
                    "sample_index": self.plan.sample_positions[idx[i]],
                    "label": yl[i],
                    "defense": cell.defense.display,
                    "defense_name": cell.defense.name,
                    "stochastic": cell.stochastic,
                    "attack": cell.attack.id,
                    "attack_name": cell.attack.name,
                    "gradient": cell.attack.gradient,
                    "randomness": cell.randomness,
                    "eot": cell.eot,
                    "norm": t_norm,
                    "eps": t_eps,
                    "threat": t_id,
                    "seed": attack_rng.seeds[i],
                    "draws": cell.draws,
                    "clean_pred": cp[i][0],
                    "clean_correct": cc[0],
                    "clean_correct_draws": cc,
                    "adv_pred": ap[i][0],
                    "adv_correct": ac[0],
                    "adv_correct_draws": ac,
                    "pert_norm": nl[i],
                    "pert_linf": ll[i],
                    "in_ball": ib[i],
                    "forward_evals": int(fwd[i]),
                    "backward_evals": int(bwd[i]),
                    "model_evals": float(mev[i]),
                    "seconds": seconds,
                    "peak_mem_mb": peak,
                    "loss_trace": tr[i] if tr is not None else None,
                    "error": err,
                }
            )
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
