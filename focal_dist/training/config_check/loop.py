"""How it is trained: the optimizer, its schedule and the loop's settings."""

from __future__ import annotations

from absl import logging

from focal_dist.distribute import per_replica_batch_size
from focal_dist.training import profiling
from focal_dist.training.allreduce import COMPRESSIONS
from focal_dist.training.config_check.checker import MISSING, Checker, get, is_int
from focal_dist.training.optimizers import OPTIMIZERS
from focal_dist.training.step import ALLREDUCE_MODES

DECAYS = ("cosine", "constant")


def check_optimizer_and_train(check: Checker, config, num_replicas, distribution=None) -> None:
    check.one_of("optimizer.name", OPTIMIZERS)
    check.number("optimizer.learning_rate", 0.0, open_low=True)
    check.number("optimizer.momentum", 0.0, 1.0, open_high=True)
    check.integer("optimizer.warmup_steps", 0)
    check.one_of("optimizer.decay", DECAYS)
    check.flag("optimizer.scale_lr_by_replicas")
    check.number("optimizer.clip_global_norm", 0.0)
    check.integer("optimizer.total_steps", 1)
    for field in ("steps", "global_batch_size", "steps_per_loop", "log_every"):
        check.integer(f"train.{field}", 1)
    check.integer("train.checkpoint_every", 1)
    check.integer("train.keep_checkpoints", 1)
    check.integer("train.eval_every", 0)  # 0: evaluate only at the end
    check.integer("train.seed", 0)
    for field in ("jit_compile", "mixed_precision", "deterministic"):
        check.flag(f"train.{field}")
    check.one_of("train.allreduce", ("auto", *ALLREDUCE_MODES))
    check.number("train.allreduce_bucket_mb", 0.0)
    check.one_of("train.allreduce_compression", tuple(COMPRESSIONS))
    compression = get(config, "train.allreduce_compression")
    if compression not in (MISSING, "none") and get(config, "train.allreduce") == "single":
        check.fail(
            "train.allreduce",
            f'"overlap" or "auto" with train.allreduce_compression={compression!r} (the '
            "single collective sends float32)",
            "single",
        )
    if compression == "bfloat16" and distribution == "horovod":
        check.fail(
            "train.allreduce_compression",
            "none or float16 under horovod (Horovod 0.28.1 cannot all-reduce bfloat16)",
            compression,
        )
    steps = get(config, "train.steps")
    steps = steps if is_int(steps) and steps >= 1 else None
    profile_steps = get(config, "train.profile_steps")
    if profile_steps is not MISSING and (expected := profiling.check(profile_steps, steps)):
        check.fail("train.profile_steps", expected, profile_steps)
    warmup, peak = get(config, "optimizer.warmup_steps"), get(config, "optimizer.learning_rate")
    if steps and is_int(warmup) and warmup > steps:
        # Legal (a run may be resumed with more steps), but rarely meant: say so.
        logging.warning(
            "optimizer.warmup_steps %d > train.steps %d: the learning rate never reaches "
            "optimizer.learning_rate (%s)",
            warmup,
            steps,
            peak,
        )
    batch = get(config, "train.global_batch_size")
    if num_replicas and is_int(batch) and batch >= 1:
        try:
            per_replica_batch_size(batch, num_replicas)
        except ValueError as error:
            check.errors.append(str(error))
