"""task.name = "segmentation": its sources, masks, Dice and batch statistics."""

from __future__ import annotations

from focal_dist.data import SEGMENTATION_SOURCES
from focal_dist.training.config_check.checker import MISSING, Checker, get, is_int
from focal_dist.training.config_check.experiment import _check_sizes


def check_segmentation(check: Checker, config, num_replicas) -> None:
    task, source = get(config, "task.name"), get(config, "data.source")
    if (task == "segmentation") != (source in SEGMENTATION_SOURCES) and source is not MISSING:
        expected = (
            f"one of {', '.join(SEGMENTATION_SOURCES)} for task.name='segmentation'"
            if task == "segmentation"
            else f"used with task.name='segmentation' only (task.name={task!r})"
        )
        check.fail("data.source", expected, source)
    if task != "segmentation":
        return
    classes = get(config, "task.num_classes")
    ignore = get(config, "data.ignore_label")
    low = classes if is_int(classes) and 2 <= classes <= 255 else 2
    if ignore is not MISSING and not (is_int(ignore) and low <= ignore <= 255):
        check.fail(
            "data.ignore_label", f"an integer in [task.num_classes, 255] = [{low}, 255]", ignore
        )
    check.number("loss.dice_weight", 0.0)
    check.integer("task.eval_images", 0)
    check.flag("model.sync_batch_norm")
    check.flag("model.batch_norm")
    _check_sizes(check, "model.widths", "(16, 32, 64)")
    sync = get(config, "model.sync_batch_norm") is True
    if sync and get(config, "train.jit_compile") is True and (num_replicas or 1) > 1:
        # Its collectives run inside the forward pass, which XLA compiles on several replicas.
        check.fail(
            "model.sync_batch_norm", "False with train.jit_compile on several replicas", True
        )
