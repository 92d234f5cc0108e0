r"""Trains an imbalanced classifier with focal loss on any backend.

    python -m focal_dist.train --config=configs/default.py --workdir=runs/x \
        --distribution=default|mirrored|multiworker|horovod [--num_cpu_devices=N] \
        [--config.train.steps=...]

Resumes from the newest usable checkpoint in --workdir; writes TensorBoard logs to
<workdir>/tensorboard, the exported model to <workdir>/export/model.keras and, at the
end, <workdir>/summary.json (step, train_loss, eval metrics, the resolved config).
Only the chief (worker 0, Horovod rank 0) writes.

Exit status: 0 when the run has finished its steps (also when rerun after that: nothing
is touched); 143 (128 + SIGTERM) when SIGTERM stopped it after saving a checkpoint, so
that job controllers retry it and the rerun resumes; 1 on an error.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags, logging

from focal_dist import configs
from focal_dist.workdir import WorkDir

FLAGS = flags.FLAGS
# A config file, or a shipped config's name (`default`, `csv`, `images`, ...).
configs.define_config_flag("config")
flags.DEFINE_string("workdir", None, "Checkpoints, TensorBoard logs, summary.json.")
flags.DEFINE_enum(
    "distribution", "default", ["default", "mirrored", "multiworker", "horovod"], "Backend."
)
flags.DEFINE_integer("num_cpu_devices", None, "mirrored: split the CPU into N devices.")
flags.DEFINE_list(
    "allow_config_change",
    [],
    "Config fields whose change from the work dir's recorded config.json is accepted "
    "(and recorded in summary.json's segments) instead of refused.",
)
flags.DEFINE_bool(
    "restart",
    False,
    "Train from step 0 when the work dir records progress but none of its checkpoints can "
    "be restored (without it, that stops the run with an error naming what was found).",
)
flags.mark_flags_as_required(["config", "workdir"])

# 128 + SIGTERM, what a shell reports for a process killed by SIGTERM: Kubernetes job
# controllers (training-operator's restartPolicy ExitCode) treat it as retryable.
PREEMPTED_EXIT_CODE = 143


def main(argv):
    del argv
    # Logical CPU devices must be configured before any other TensorFlow call.
    from focal_dist.distribute import get_backend

    options = {"num_cpu_devices": FLAGS.num_cpu_devices} if FLAGS.distribution == "mirrored" else {}
    backend = get_backend(FLAGS.distribution, **options)

    from focal_dist import _cli
    from focal_dist.tasks import get_task
    from focal_dist.training.api import run
    from focal_dist.training.config_check import validate_config

    config = FLAGS.config
    # Before anything is written: a bad value or a config the work dir's run was not
    # trained with must not leave a half-made work dir.
    try:
        validate_config(
            config, num_replicas=backend.num_replicas_in_sync, distribution=backend.name
        )
        summary = run(
            get_task(config),
            config=config,
            backend=backend,
            workdir=FLAGS.workdir,
            allow_config_change=FLAGS.allow_config_change,
            restart=FLAGS.restart,
        )
    except _cli.user_errors() as error:
        return _cli.report(error)
    if summary["preempted"]:
        if backend.is_chief:
            logging.warning(
                "stopped by SIGTERM at step %d with a checkpoint; exiting %d so that the job "
                "is retried; the same command resumes",
                summary["step"],
                PREEMPTED_EXIT_CODE,
            )
        sys.stdout.flush()
        return PREEMPTED_EXIT_CODE
    if backend.is_chief:
        logging.info(
            "done at step %d: train loss %s, %s -> %s",
            summary["step"],
            summary["train_loss"],
            _headline(summary["eval"]),
            WorkDir(FLAGS.workdir).summary,
        )


def _headline(metrics: dict) -> str:
    """The last evaluation's headline numbers, whichever the task reports."""
    metrics = metrics or {}
    keys = [
        k
        for k in ("pr_auc", "roc_auc", "miou", "mean_dice")
        if isinstance(metrics.get(k), (int, float))
    ]
    if not keys:
        return "no evaluation"
    return "eval " + " ".join(f"{k} {metrics[k]:.4f}" for k in keys)


if __name__ == "__main__":
    from focal_dist import _cli

    _cli.run(main)
