"""What is trained: the task, its loss and the model."""

from __future__ import annotations

from focal_dist import class_weights as class_weights_lib
from focal_dist.tasks import TASKS
from focal_dist.tasks.loss_builder import LOSSES, SIGMOID_TASKS, TASKS_OF, losses_for
from focal_dist.training.config_check.checker import MISSING, Checker, get, is_int, is_number

CLASS_WEIGHTS = ("none", "auto", *class_weights_lib.SCHEMES)


def check_task_and_loss(check: Checker, config) -> None:
    check.one_of("task.name", TASKS)
    task = get(config, "task.name")
    minimum = {"multiclass": 2, "multi_label": 1, "segmentation": 2}.get(task, 1)
    check.integer("task.num_classes", minimum)
    check.one_of("loss.name", LOSSES)
    loss = get(config, "loss.name")
    if loss in TASKS_OF and task in TASKS and task not in TASKS_OF[loss]:
        check.fail(
            "loss.name", f"one of {', '.join(losses_for(task))} for task.name={task!r}", loss
        )
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
    weights = get(config, "loss.class_weights")
    if loss in ("asl", "logit_adjusted") and weights not in (MISSING, "none"):
        # ASL's asymmetric focusing and the prior's adjustment replace class weights.
        check.fail("loss.class_weights", f"none for loss.name={loss!r}", weights)


_BINARY_TASKS = SIGMOID_TASKS


def _check_alpha(check: Checker, config, task) -> None:
    alpha = get(config, "loss.alpha")
    if alpha is MISSING or (alpha == "auto" and task in _BINARY_TASKS):
        return
    outputs = 1 if task == "binary" else get(config, "task.num_classes")
    values = list(alpha) if isinstance(alpha, (tuple, list)) else [alpha]
    in_range = all(is_number(v) and 0.0 <= v <= 1.0 for v in values)
    if isinstance(alpha, (tuple, list)):
        if not in_range or len(values) != outputs:
            check.fail("loss.alpha", f"{outputs} numbers in [0, 1] (one per output)", alpha)
    elif not in_range:
        # A number, a list of one per output, or (binary, multi-label) "auto".
        check.fail("loss.alpha", "a number in [0, 1]", alpha)


def _check_sizes(check: Checker, field: str, example: str) -> None:
    sizes = get(check.config, field)
    if sizes is not MISSING and not (
        isinstance(sizes, (tuple, list)) and all(is_int(u) and u >= 1 for u in sizes)
    ):
        check.fail(field, f"a tuple of integers >= 1, e.g. {example}", sizes)


def check_model(check: Checker, config) -> None:
    name = get(config, "model.name")
    if name is not MISSING:
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
