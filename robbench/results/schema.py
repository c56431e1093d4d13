"""Executors: where a run's work units execute, how failures are retried, how results merge.

The runner plans *units* (one cell, a list of samples) whose seeds depend only on the suite seed,
the cell and each sample id, so any split of the units over processes or cluster jobs gives the
same rows as one process. Each unit writes one atomic parquet shard into the results directory;
merging is reading that directory, and a rerun plans only the units whose rows are missing.

Executors
    ``local`` (default)
        ``workers == 1``: the units run in this process. ``workers > 1``: a pool of worker
        processes, each with ``threads`` torch threads (default: the CPU cores divided by the
        workers), fed one unit at a time (dynamic load balancing). A worker that dies (segfault,
        out of memory) is replaced and only its current unit is charged a failed attempt. The
        workers start (and load the data) while the coordinator loads the models, and they also
        compute the false-robustness checks of :mod:`robbench.run.checks`, one task per defense queued
        ahead of the units, so neither adds to the run's serial part.
    ``submitit``
        Slurm through `submitit <https://github.com/facebookincubator/submitit>`_ (the extra
        ``pip install 'robbench[submitit]'``): the units are grouped into ``shards`` jobs (a job
        array), tracked until done, and the failed ones resubmitted. ``cluster="local"`` runs the
        same jobs as local subprocesses (submitit's LocalExecutor: the tests use it), ``"debug"``
        in this process; ``"auto"`` (default) is Slurm, refused where no Slurm is found. A job killed at its time limit or preempted is requeued by Slurm and
        continues with the units it had not finished (the job skips units whose rows exist).

Failures
    A unit that raises is retried up to ``max_retries`` times (a :class:`RobbenchError`, a
    deterministic problem such as a defense that ignores its seeds, is not retried). A unit that
    still fails gets *failure rows*: one per sample, ``error`` = ``"unit failed after N attempts:
    ..."``, never counted robust or clean-correct; the other units continue and the run ends with
    status ``failed``. Failure rows live in shards named ``failed-*`` that a rerun deletes first,
    so a rerun retries exactly those units.

The coordinating process holds the results directory's lock for the whole run; workers write
their shards (atomically) without taking it and never quarantine or delete anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass
import pyarrow as pa

#: shard-name prefix of failure rows (deleted and retried by the next run)
FAILED_PREFIX = "failed-"


SCHEMA = pa.schema(
    [
        ("cell", pa.string()),
        ("sample_id", pa.string()),
        ("sample_index", pa.int64()),
        ("label", pa.int64()),
        ("defense", pa.string()),
        ("defense_name", pa.string()),
        ("stochastic", pa.bool_()),
        ("attack", pa.string()),
        ("attack_name", pa.string()),
        ("gradient", pa.string()),
        ("randomness", pa.string()),
        ("eot", pa.int64()),
        ("norm", pa.string()),
        ("eps", pa.float64()),
        ("threat", pa.string()),
        ("seed", pa.int64()),
        ("draws", pa.int64()),
        ("clean_pred", pa.int64()),
        ("clean_correct", pa.bool_()),
        ("clean_correct_draws", pa.list_(pa.bool_())),
        ("adv_pred", pa.int64()),
        ("adv_correct", pa.bool_()),
        ("adv_correct_draws", pa.list_(pa.bool_())),
        ("pert_norm", pa.float64()),
        ("pert_linf", pa.float64()),
        ("in_ball", pa.bool_()),
        ("forward_evals", pa.int64()),
        ("backward_evals", pa.int64()),
        ("model_evals", pa.float64()),
        ("seconds", pa.float64()),
        ("peak_mem_mb", pa.float64()),
        ("loss_trace", pa.list_(pa.float32())),
        ("error", pa.string()),
        #: cascade (robbench.run.cascade): the attack id that broke this sample earlier; null when attacked
        ("broken_by", pa.string()),
    ]
)


COLUMNS = [f.name for f in SCHEMA]
