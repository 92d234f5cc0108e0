"""The optimizer and its learning-rate schedule, built from the config.

Optimizers by name (`optimizer.name`), as models are: `OPTIMIZERS` maps each name to a
builder of (schedule, config section).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

__all__ = ["OPTIMIZERS", "WarmupCosine", "build_optimizer"]


@keras.saving.register_keras_serializable(package="focal_dist")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak` over `warmup_steps`, then cosine decay to 0 at `total_steps`.

    lr(s) = peak * s / warmup                                   s < warmup
    lr(s) = peak * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2   otherwise
    """

    def __init__(self, peak: float, warmup_steps: int, total_steps: int, decay: str = "cosine"):
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.decay = decay

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = tf.cast(max(self.warmup_steps, 1), tf.float32)
        rate = (
            self.peak * tf.minimum(1.0, (step + 1.0) / warmup)
            if self.warmup_steps
            else (tf.constant(self.peak))
        )
        if self.decay == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
            rate = tf.where(
                step < self.warmup_steps, rate, self.peak * 0.5 * (1.0 + tf.cos(math.pi * progress))
            )
        return rate

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "decay": self.decay,
        }


OPTIMIZERS = {
    "sgd": lambda schedule, config: keras.optimizers.SGD(schedule),
    "momentum": lambda schedule, config: keras.optimizers.SGD(schedule, momentum=config.momentum),
    "adam": lambda schedule, config: keras.optimizers.Adam(schedule),
}


def build_optimizer(config, num_replicas: int) -> keras.optimizers.Optimizer:
    """`OPTIMIZERS[config.name]` with the warm-up + cosine schedule.

    With `scale_lr_by_replicas`, the peak rate is multiplied by the replica count (the
    linear scaling rule for a global batch that grows with the replicas).
    """
    if config.name not in OPTIMIZERS:
        *others, last = OPTIMIZERS
        raise ValueError(
            f"optimizer.name must be {', '.join(others)} or {last}; got {config.name!r}"
        )
    peak = config.learning_rate * (num_replicas if config.scale_lr_by_replicas else 1)
    schedule = WarmupCosine(peak, config.warmup_steps, config.total_steps, config.decay)
    return OPTIMIZERS[config.name](schedule, config)
