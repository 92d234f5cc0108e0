"""The Python entry point: train a Task under any distribution, as the CLI does.

    import focal_dist.training as fdt
    summary = fdt.train_task(my_task, workdir="runs/mine", distribution="mirrored",
                             num_cpu_devices=2)

Checkpoints (and resume), TensorBoard logs, `summary.json` and `export/model.keras`
are those of `python -m focal_dist.train`; both go through `run`.
"""

from __future__ import annotations

import os

from absl import logging

from focal_dist.data import checks
from focal_dist.distribute import Backend, get_backend


class WorkdirError(OSError):
    """The work dir cannot be created or written; nothing was written."""


def _make_writable(workdir: str) -> None:
    """Creates `workdir` and proves it writable (a probe file), or raises WorkdirError."""
    probe = os.path.join(workdir, f".write_probe_{os.getpid()}")
    try:
        os.makedirs(workdir, exist_ok=True)
        with open(probe, "w") as handle:
            handle.write("ok")
        os.remove(probe)
    except OSError as error:
        raise WorkdirError(
            f"--workdir {workdir} cannot be created or written ({error.strerror or error}); "
            "use a directory this user can write (on Kubernetes: a volume mounted read-write)"
        ) from None


def train_task(
    task,
    *,
    workdir: str,
    config=None,
    distribution: str | Backend = "default",
    allow_config_change=(),
    restart: bool = False,
    **backend_options,
) -> dict:
    """Trains `task` (a `focal_dist.training.Task`) and returns the run's summary.

    Args:
      task: what is trained (model, datasets, per-example loss); see `base_task`.
      workdir: checkpoints, TensorBoard logs, summary.json and the export. A work dir
        holding a checkpoint resumes from it; a finished one is left as it is.
      config: the loop's settings (`train` and `optimizer` sections of
        `focal_dist.configs.get_config("default")`, which is used when None).
      distribution: "default", "mirrored", "multiworker", "horovod" or a Backend.
        Build it (or call this) before running any TensorFlow op when asking for
        logical CPU devices (`num_cpu_devices`).
      allow_config_change: config fields whose change from the work dir's recorded
        config is accepted (and recorded) instead of refused (training/run_record.py).
      restart: train from step 0 when the work dir records progress but none of its
        checkpoints can be restored (otherwise that is a NoUsableCheckpointError).
      **backend_options: `num_cpu_devices` (mirrored), `communication` (multiworker).

    Returns:
      The summary dict written to summary.json (`preempted` True when SIGTERM stopped
      the run after saving a checkpoint: call again to resume).

    Raises:
      focal_dist.data.files.DataError: a bad value in the data (file, column, row).
    """
    backend = (
        distribution
        if isinstance(distribution, Backend)
        else get_backend(distribution, **backend_options)
    )
    if config is None:
        from focal_dist import configs

        config = configs.get_config("default")
    from focal_dist.training.config_check import validate_config

    validate_config(
        config,
        num_replicas=backend.num_replicas_in_sync,
        training_only=True,
        distribution=backend.name,
    )
    return run(
        task,
        config=config,
        backend=backend,
        workdir=workdir,
        allow_config_change=allow_config_change,
        restart=restart,
    )


def run(
    task, *, config, backend: Backend, workdir: str, allow_config_change=(), restart=False
) -> dict:
    """Checks the config against the work dir's, seeds and trains; the config is already
    validated. Raises run_record.ConfigChangedError before anything is written."""
    import tensorflow as tf

    from focal_dist.training import run_record
    from focal_dist.training.trainer import Trainer

    accepted = run_record.check_config(backend, workdir, config, allow_config_change)
    tf.random.set_seed(config.train.seed)
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    _make_writable(workdir)
    if backend.is_chief:
        logging.info(
            "distribution %s: %d replicas, %d workers; config:\n%s",
            backend.name,
            backend.num_replicas_in_sync,
            backend.num_workers,
            config,
        )
    with checks.bad_data_as_data_error():
        trainer = Trainer(
            config=config,
            task=task,
            backend=backend,
            workdir=workdir,
            accepted_changes=accepted,
            restart=restart,
        )
        return trainer.train()
