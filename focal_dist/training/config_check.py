"""Every config value checked before a run writes anything.

`validate_config(config)` raises one `ConfigError` listing every bad field, each as
`<field> must be <what was expected>; got <value>`. For file sources it also opens the
files' headers (CSV), schemas (Parquet) or first records (TFRecord): the data path must
exist and `data.num_features` must be 0 (read from the files) or match them.

Fields that a config does not have are skipped: a config may drop what it does not use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import tensorflow as tf
from absl import logging

from focal_dist import class_weights as class_weights_lib
from focal_dist.data import (
    FILE_SOURCES,
    SEGMENTATION_SOURCES,
    SOURCES,
    DataError,
    resolve_num_features,
)
from focal_dist.data.files import NON_FINITE, label_columns
from focal_dist.distribute import per_replica_batch_size
from focal_dist.tasks import TASKS
from focal_dist.tasks.classification_losses import LOSSES
from focal_dist.training import profiling
from focal_dist.training.allreduce import COMPRESSIONS
from focal_dist.training.optimizers import OPTIMIZERS
from focal_dist.training.step import ALLREDUCE_MODES

DECAYS = ("cosine", "constant")
CLASS_WEIGHTS = ("none", "auto", *class_weights_lib.SCHEMES)
_MISSING = object()


class ConfigError(ValueError):
    """One or more config values are invalid; the message lists each field."""


def _get(config, field: str):
    node = config
    for part in field.split("."):
        if part not in node:
            return _MISSING
        node = node[part]
    return node


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


class _Checker:
    def __init__(self, config):
        self.config = config
        self.errors: list[str] = []

    def fail(self, field: str, expected: str, value) -> None:
        self.errors.append(f"{field} must be {expected}; got {value!r}")

    def one_of(self, field: str, choices: Sequence[str]) -> None:
        value = _get(self.config, field)
        if value is not _MISSING and value not in choices:
            self.fail(field, f"one of {', '.join(map(str, choices))}", value)

    def flag(self, field: str) -> None:
        value = _get(self.config, field)
        if value is not _MISSING and not isinstance(value, bool):
            self.fail(field, "True or False", value)

    def integer(self, field: str, minimum: int) -> None:
        value = _get(self.config, field)
        if value is not _MISSING and not (_is_int(value) and value >= minimum):
            self.fail(field, f"an integer >= {minimum}", value)

    def number(
        self, field: str, low: float, high: float = math.inf, *, open_low=False, open_high=False
    ) -> None:
        value = _get(self.config, field)
        if value is _MISSING:
            return
        above = value > low if open_low else value >= low
        below = value < high if open_high else value <= high
        if not (_is_number(value) and above and below):
            left, right = "(" if open_low else "[", ")" if open_high or high == math.inf else "]"
            expected = (
                f"a finite number {'>' if open_low else '>='} {low:g}"
                if high == math.inf
                else f"a number in {left}{low:g}, {high:g}{right}"
            )
            self.fail(field, expected, value)


def _check_task_and_loss(check: _Checker, config) -> None:
    check.one_of("task.name", TASKS)
    task = _get(config, "task.name")
    minimum = {"multiclass": 2, "multi_label": 1, "segmentation": 2}.get(task, 1)
    check.integer("task.num_classes", minimum)
    check.one_of("loss.name", LOSSES)
    loss = _get(config, "loss.name")
    tasks_of = {
        "ce": ("multiclass", "segmentation"),
        "bce": _BINARY_TASKS,
        "asl": _BINARY_TASKS,
        "logit_adjusted": ("binary", "multi_label", "multiclass"),
    }
    if loss in tasks_of and task in TASKS and task not in tasks_of[loss]:
        fitting = [name for name in LOSSES if task in tasks_of.get(name, TASKS)]
        check.fail("loss.name", f"one of {', '.join(fitting)} for task.name={task!r}", loss)
    check.number("loss.gamma", 0.0)
    _check_alpha(check, config, task)
    check.flag("loss.apply_class_balancing")
    check.number("loss.label_smoothing", 0.0, 1.0)
    check.one_of("loss.class_weights", CLASS_WEIGHTS)
    check.number("loss.beta", 0.0, 1.0, open_high=True)
    check.one_of("loss.gamma_schedule", ("none", "flsd53"))
    check.number("loss.poly_epsilon", -1.0)
    check.number("loss.tau", 0.0)
    check.number("loss.gamma_pos", 0.0)
    check.number("loss.gamma_neg", 0.0)
    check.number("loss.clip", 0.0, 1.0, open_high=True)
    weights = _get(config, "loss.class_weights")
    if loss in ("asl", "logit_adjusted") and weights not in (_MISSING, "none"):
        # ASL's asymmetric focusing and the prior's adjustment replace class weights.
        check.fail("loss.class_weights", f"none for loss.name={loss!r}", weights)


_BINARY_TASKS = ("binary", "multi_label")


def _check_alpha(check: _Checker, config, task) -> None:
    alpha = _get(config, "loss.alpha")
    if alpha is _MISSING or (alpha == "auto" and task in _BINARY_TASKS):
        return
    outputs = 1 if task == "binary" else _get(config, "task.num_classes")
    values = list(alpha) if isinstance(alpha, (tuple, list)) else [alpha]
    in_range = all(_is_number(v) and 0.0 <= v <= 1.0 for v in values)
    if isinstance(alpha, (tuple, list)):
        if not in_range or len(values) != outputs:
            check.fail("loss.alpha", f"{outputs} numbers in [0, 1] (one per output)", alpha)
    elif not in_range:
        # A number, a list of one per output, or (binary, multi-label) "auto".
        check.fail("loss.alpha", "a number in [0, 1]", alpha)


def _check_optimizer_and_train(check: _Checker, config, num_replicas) -> None:
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
    steps = _get(config, "train.steps")
    steps = steps if _is_int(steps) and steps >= 1 else None
    profile_steps = _get(config, "train.profile_steps")
    if profile_steps is not _MISSING and (expected := profiling.check(profile_steps, steps)):
        check.fail("train.profile_steps", expected, profile_steps)
    warmup, peak = _get(config, "optimizer.warmup_steps"), _get(config, "optimizer.learning_rate")
    if steps and _is_int(warmup) and warmup > steps:
        # Legal (a run may be resumed with more steps), but rarely meant: say so.
        logging.warning(
            "optimizer.warmup_steps %d > train.steps %d: the learning rate never reaches "
            "optimizer.learning_rate (%s)",
            warmup,
            steps,
            peak,
        )
    batch = _get(config, "train.global_batch_size")
    if num_replicas and _is_int(batch) and batch >= 1:
        try:
            per_replica_batch_size(batch, num_replicas)
        except ValueError as error:
            check.errors.append(str(error))


def _check_sizes(check: _Checker, field: str, example: str) -> None:
    sizes = _get(check.config, field)
    if sizes is not _MISSING and not (
        isinstance(sizes, (tuple, list)) and all(_is_int(u) and u >= 1 for u in sizes)
    ):
        check.fail(field, f"a tuple of integers >= 1, e.g. {example}", sizes)


def _check_model(check: _Checker, config) -> None:
    name = _get(config, "model.name")
    if name is not _MISSING:
        from focal_dist import models
        from focal_dist.models import resolver

        if resolver.is_spec(name):
            try:
                resolver.resolve(name)
            except ValueError as error:
                check.errors.append(str(error))
        elif name not in models.names():
            expected = f"one of {', '.join(models.names())} or 'module:function'"
            check.fail("model.name", expected, name)
    _check_sizes(check, "model.hidden_units", "(64, 32)")
    _check_sizes(check, "model.filters", "(32, 64, 128)")
    check.number("model.l2", 0.0)


def _check_synthetic(check: _Checker, config) -> None:
    check.integer("data.num_features", 1)
    check.integer("data.synthetic.num_train", 1)
    check.integer("data.synthetic.num_eval", 1)
    check.integer("data.synthetic.num_calibration", 0)
    check.number("data.synthetic.positive_rate", 0.0, 1.0, open_low=True, open_high=True)
    check.number("data.synthetic.label_noise", 0.0, 1.0)
    check.number("data.synthetic.hard_fraction", 0.0, 1.0)
    check.integer("data.synthetic.seed", 0)


def _check_images(check: _Checker, config) -> None:
    size = _get(config, "data.image_size")
    sizes = size if isinstance(size, (tuple, list)) else (size,)
    if size is not _MISSING and not (
        len(sizes) in (1, 2) and all(_is_int(u) and u >= 1 for u in sizes)
    ):
        check.fail("data.image_size", "an integer >= 1 or (height, width)", size)
    check.one_of("data.channels", (1, 3))
    check.flag("data.augment")
    check.number("data.crop_min_area", 0.0, 1.0, open_low=True)
    for field in ("data.path", "data.eval_path", "data.calibration_path"):
        path = _get(config, field)
        if path is _MISSING or not path:
            continue
        if not any(tf.io.gfile.glob(p.strip()) for p in path.split(",")):
            check.fail(field, "an existing folder or files", path)


def _check_files(check: _Checker, config, source: str) -> None:
    """Paths exist, label columns fit the task, num_features is 0 or the files' count."""
    data = config.data
    task = _get(config, "task.name")
    labels = label_columns(data.label_column) if data.label_column else []
    if not labels:
        check.fail("data.label_column", "a column name (comma-separated for multi-label)", "")
        return
    expected = _get(config, "task.num_classes") if task == "multi_label" else 1
    if source != "tfrecord" and len(labels) != expected:
        check.fail(
            "data.label_column",
            f"{expected} column(s) for task.name={task!r} with task.num_classes={expected}",
            data.label_column,
        )
        return
    num_features = _get(config, "data.num_features")
    if num_features is None:
        num_features = 0
    if not (_is_int(num_features) and num_features >= 0):
        return  # reported by the integer check
    for field in ("data.path", "data.eval_path", "data.calibration_path"):
        path = _get(config, field)
        if path is _MISSING or not path:
            continue
        try:
            num_features = resolve_num_features(
                source,
                path,
                num_features,
                label_column=data.label_column,
                feature_column=data.feature_column,
            )
        except DataError as error:
            check.errors.append(f"{field}: {error}")


def _check_segmentation(check: _Checker, config, num_replicas) -> None:
    """task.name = "segmentation" and its sources, masks, Dice and batch statistics."""
    task, source = _get(config, "task.name"), _get(config, "data.source")
    if (task == "segmentation") != (source in SEGMENTATION_SOURCES) and source is not _MISSING:
        expected = (
            f"one of {', '.join(SEGMENTATION_SOURCES)} for task.name='segmentation'"
            if task == "segmentation"
            else f"used with task.name='segmentation' only (task.name={task!r})"
        )
        check.fail("data.source", expected, source)
    if task != "segmentation":
        return
    classes = _get(config, "task.num_classes")
    ignore = _get(config, "data.ignore_label")
    low = classes if _is_int(classes) and 2 <= classes <= 255 else 2
    if ignore is not _MISSING and not (_is_int(ignore) and low <= ignore <= 255):
        check.fail(
            "data.ignore_label", f"an integer in [task.num_classes, 255] = [{low}, 255]", ignore
        )
    check.number("loss.dice_weight", 0.0)
    check.integer("task.eval_images", 0)
    check.flag("model.sync_batch_norm")
    check.flag("model.batch_norm")
    _check_sizes(check, "model.widths", "(16, 32, 64)")
    sync = _get(config, "model.sync_batch_norm") is True
    if sync and _get(config, "train.jit_compile") is True and (num_replicas or 1) > 1:
        # Its collectives run inside the forward pass, which XLA compiles on several replicas.
        check.fail(
            "model.sync_batch_norm", "False with train.jit_compile on several replicas", True
        )


def _check_data(check: _Checker, config) -> None:
    source = _get(config, "data.source")
    if source is _MISSING:
        return
    check.one_of("data.source", SOURCES)
    if source == "segmentation_synthetic":
        _check_synthetic(check, config)
        _check_images(check, config)
        return
    check.integer("data.num_features", 0)
    check.integer("data.shuffle_buffer", 0)
    check.one_of("data.non_finite", NON_FINITE)
    if source == "synthetic":
        _check_synthetic(check, config)
    elif source in SOURCES:
        if not _get(config, "data.path"):
            check.errors.append(f"data.path is required for data.source={source!r}")
        elif source in FILE_SOURCES:
            _check_files(check, config, source)
        else:
            _check_images(check, config)


def validate_config(
    config, *, num_replicas: int | None = None, training_only: bool = False
) -> None:
    """Raises ConfigError naming every invalid field, its value and what was expected.

    Args:
      config: the experiment ConfigDict (configs/default.py's fields).
      num_replicas: when known, `train.global_batch_size` must be divisible by it.
      training_only: check only `optimizer` and `train` (a user's own Task brings its
        own model, data and loss).
    """
    check = _Checker(config)
    if not training_only:
        _check_task_and_loss(check, config)
        _check_model(check, config)
    _check_optimizer_and_train(check, config, num_replicas)
    if not training_only:
        _check_data(check, config)
        _check_segmentation(check, config, num_replicas)
    if check.errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(check.errors))
