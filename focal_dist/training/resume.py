"""Where a run continues, agreed by every worker.

A run is a sequence of processes over one work dir. Each start asks two questions, and
every worker must get the same answers or the collectives of the first step would
mismatch: has the run already finished, and from which checkpoint does it continue?
The chief (worker 0, Horovod rank 0) answers from the files; the answer reaches the
other workers through a SUM over workers in which only the chief's term is non-zero.
"""

from __future__ import annotations

import tensorflow as tf
from absl import logging

from focal_dist.distribute import Backend
from focal_dist.training import reporting
from focal_dist.training.checkpoints import CheckpointStore, NoUsableCheckpointError
from focal_dist.workdir import WorkDir


def finished_summary(backend: Backend, workdir: str, steps: int) -> dict | None:
    """The summary of a run that already finished `steps` steps, else None.

    Finished means summary.json says `complete` at a step >= `steps`; rerunning such a
    command changes nothing (raising train.steps continues it instead).
    """
    summary = reporting.read_summary(workdir) if backend.is_chief else None
    done = bool(summary and summary.get("complete") and summary.get("step", 0) >= steps)
    if not backend.any_worker(done):
        return None
    if not backend.is_chief:
        return {"step": None, "preempted": False, "eval": {}, "complete": True}
    logging.info(
        "run already complete at step %d (%s); nothing to do (raise --config.train.steps "
        "to train further)",
        summary["step"],
        WorkDir(workdir).summary,
    )
    return summary


def restore(backend: Backend, store: CheckpointStore, variables, *, restart: bool = False) -> int:
    """Restores the checkpoint the chief chose on every worker; returns its step (0: none).

    Every worker reads the chief's checkpoint folder, so the work dir must be shared
    (one machine, or a ReadWriteMany volume). If any worker fails, all of them raise;
    when the chief refuses to start from step 0 over recorded progress
    (`NoUsableCheckpointError`, unless `restart`), every worker stops with it.
    """
    chosen, refusal = 0, None
    if backend.is_chief:
        try:
            chosen = store.choose(restart=restart)
        except NoUsableCheckpointError as error:
            refusal = error
    step = int(backend.chief_value(chosen))
    backend.raise_together(
        refusal,
        NoUsableCheckpointError(
            f"worker 0 found no usable checkpoint in {store.directory}; see its log"
        ),
    )
    error = None
    if step:
        try:
            store.restore(step)
        except (OSError, ValueError, tf.errors.OpError) as failure:
            error = failure
    backend.raise_together(
        error, RuntimeError(f"another worker could not restore checkpoint {step}; see its log")
    )
    # Horovod: every rank continues from rank 0's values (a no-op under tf.distribute).
    backend.broadcast_variables(variables)
    if backend.is_chief:
        store.commit_restore(step)
        if step:
            logging.info("resumed from %s at step %d", store.prefix(step), step)
    return step
