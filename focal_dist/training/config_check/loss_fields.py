"""Every `loss.*` value set away from its default either reaches the loss or is refused.

The table beside `build_loss` (tasks/loss_builder.py) says which fields each loss reads,
on which path: the sigmoid path of the binary and multi-label tasks, the softmax path of
multiclass and segmentation. A field the chosen task and loss do not read, set to
anything but its default (configs/default.py, the one place defaults live), is named with
its value and the losses that would read it.
"""

from __future__ import annotations

from focal_dist.tasks.loss_builder import READS, SIGMOID_READS, SIGMOID_TASKS
from focal_dist.training.config_check.checker import MISSING, Checker, get

# Values that say what a loss which does not read the field does anyway: gamma 0 is
# cross-entropy's focusing, and alpha 1 weighs no class (the shipped softmax configs set
# it, and a user who switches such a config to a sigmoid task keeps it).
NEUTRAL = {"gamma": {"ce": 0.0, "bce": 0.0}, "alpha": 1.0}
# The class weighting's fields, and the dense loss's Dice term.
OTHER_READS = {
    "beta": "loss.class_weights='effective_number'",
    "dice_weight": "task.name='segmentation'",
}


def fields_read(task: str, loss_config) -> set[str]:
    """The `loss.*` fields that reach the loss for this task and `loss` config."""
    loss = loss_config.name
    read = set(READS.get(loss, ())) | {"name", "class_weights"}
    if task in SIGMOID_TASKS:
        read |= set(SIGMOID_READS.get(loss, ()))
        if not _sigmoid_alpha_applied(loss_config):
            read.discard("alpha")
    if loss_config.get("class_weights") == "effective_number":
        read.add("beta")
    if task == "segmentation":
        read.add("dice_weight")
    return read


def check_loss_fields(check: Checker, config) -> None:
    from focal_dist.configs import default

    task, loss = get(config, "task.name"), get(config, "loss.name")
    if MISSING in (task, loss) or "loss" not in config:
        return
    defaults = default.get_config().loss
    read = fields_read(task, config.loss)
    for field in sorted(config.loss):
        value = config.loss[field]
        if field in read or (field not in defaults and field not in OTHER_READS):
            continue
        if field in defaults and _same(value, defaults[field]):
            continue
        if field == "alpha" and _same(value, NEUTRAL["alpha"]):
            continue
        if field == "gamma" and loss in NEUTRAL["gamma"] and _same(value, NEUTRAL["gamma"][loss]):
            continue
        reason = f"it is read {_readers(field)}; remove it or choose a loss that reads it"
        if field == "alpha" and task in SIGMOID_TASKS and "alpha" in READS.get(loss, ()):
            # Keras's BinaryFocalCrossentropy: alpha weighs the classes only when asked to.
            reason = "set loss.apply_class_balancing=True to apply it (or loss.alpha='auto')"
        check.errors.append(
            f"loss.{field}={value!r} has no effect with task.name={task!r} and "
            f"loss.name={loss!r}: {reason}"
        )


def _sigmoid_alpha_applied(loss_config) -> bool:
    return bool(loss_config.get("apply_class_balancing")) or loss_config.get("alpha") == "auto"


def _same(value, default) -> bool:
    if isinstance(value, (tuple, list)) or isinstance(default, (tuple, list)):
        return list(value) == list(default) if isinstance(value, (tuple, list)) else False
    return value == default


def _readers(field: str) -> str:
    if field in OTHER_READS:
        return f"only with {OTHER_READS[field]}"
    losses = [name for name, fields in READS.items() if field in fields]
    sigmoid = [name for name, fields in SIGMOID_READS.items() if field in fields]
    where = [f"loss.name={name!r}" for name in losses]
    where += [f"loss.name={name!r} on task.name binary or multi_label" for name in sigmoid]
    return "by " + " or ".join(where)
