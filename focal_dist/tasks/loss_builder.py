r"""The loss a config means, built in one place once the labels are counted.

`build_loss(config.loss, counts, task=...)` is the one reader of `loss.*` on the way to
the loss: the classification tasks and segmentation call it with what their label pass
counted over all workers (`LabelCounts`). Beside it sit the two tables the config check
reads: which loss fits which task (`TASKS_OF`), and which `loss.*` fields each loss reads
(`READS`, `SIGMOID_READS`; a value set on a field the chosen loss does not read is
refused, training/config_check/loss_fields.py).

With p_t the probability of the true class, w_y the class weight of `loss.class_weights`
and epsilon `loss.poly_epsilon` (Poly-1, Leng et al.):

    focal           alpha_t (1 - p_t)^gamma (-log p_t) + epsilon (1 - p_t)^(gamma + 1)
    bce, ce         the same with gamma = 0 and no alpha: -log p_t + epsilon (1 - p_t)
    asl             ASL (Ridnik et al.): (1 - p)^gamma_pos (-log p) on positives,
                    p_m^gamma_neg (-log(1 - p_m)) on negatives, p_m = max(p - clip, 0)
    logit_adjusted  cross-entropy of z + tau log(prior), the prior the all-reduced
                    histogram's (Menon et al.)

each times w_y where class weights are set. Sigmoid tasks (binary, multi_label) apply the
formula per output; softmax tasks (multiclass, segmentation) over the classes, and
segmentation's pixels of `ignore_label` get 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from focal_dist import losses
from focal_dist.class_weights import LabelHistogram

SIGMOID_TASKS = ("binary", "multi_label")
# Which loss fits which task.
TASKS_OF = {
    "focal": ("binary", "multi_label", "multiclass", "segmentation"),
    "bce": SIGMOID_TASKS,
    "ce": ("multiclass", "segmentation"),
    "asl": SIGMOID_TASKS,
    "logit_adjusted": ("binary", "multi_label", "multiclass"),
}
LOSSES = tuple(TASKS_OF)
# Losses that need the label histogram whatever loss.class_weights says.
NEEDS_HISTOGRAM = ("logit_adjusted",)
# The `loss.*` fields each loss reads, on every task it fits ...
READS = {
    "focal": ("gamma", "alpha", "gamma_schedule", "poly_epsilon"),
    "bce": ("poly_epsilon",),
    "ce": ("poly_epsilon",),
    "asl": ("gamma_pos", "gamma_neg", "clip"),
    "logit_adjusted": ("tau",),
}
# ... and on the sigmoid tasks only (binary_focal_crossentropy's arguments).
SIGMOID_READS = {
    "focal": ("apply_class_balancing", "label_smoothing"),
    "bce": ("label_smoothing",),
}

PerExampleLoss = Callable  # (labels, logits) -> per-example (per-pixel) losses


@dataclasses.dataclass(frozen=True)
class LabelCounts:
    """What a task's label pass counted over all workers, as the loss uses it.

    `histogram`: the labels (pixels) per class; `class_weight`: `loss.class_weights`
    fitted to it (None: no weights); `alpha`: each output's negative share, for
    `loss.alpha = "auto"` on the sigmoid tasks (None otherwise).
    """

    histogram: LabelHistogram | None = None
    class_weight: np.ndarray | None = None
    alpha: np.ndarray | None = None


def losses_for(task: str) -> tuple[str, ...]:
    """The `loss.name`s that fit `task`, in `LOSSES` order."""
    return tuple(name for name in LOSSES if task in TASKS_OF[name])


def check_fits(loss_name: str, task: str) -> None:
    """ValueError naming `loss.name` and what fits `task.name`, unless it fits."""
    if loss_name not in TASKS_OF or task not in TASKS_OF[loss_name]:
        raise ValueError(
            f"loss.name must be one of {', '.join(losses_for(task))} for task.name={task!r}; "
            f"got {loss_name!r}"
        )


def build_loss(
    loss, counts: LabelCounts, *, task: str, ignore_label: int | None = None
) -> PerExampleLoss:
    """The per-example loss `fn(labels, logits)` that the `loss` config section means.

    `task` is "binary", "multi_label", "multiclass" or "segmentation" (whose pixels of
    `ignore_label` get 0); `counts` is what the task's label pass counted. Returns [B]
    losses, or [B, H, W] for segmentation, class weights applied.
    """
    check_fits(loss.name, task)
    if loss.name == "asl":
        return _asymmetric(loss)
    if loss.name == "logit_adjusted":
        return _logit_adjusted(loss, counts, task)
    return _focal(loss, counts, task, ignore_label, focal=loss.name == "focal")


def gamma_schedule(loss) -> str | None:
    """`loss.gamma_schedule` as the focal losses take it (None: a constant gamma)."""
    return None if loss.gamma_schedule in ("", "none") else loss.gamma_schedule


def _focal(loss, counts, task, ignore_label, *, focal):
    # Cross-entropy is focal loss with gamma = 0 and no alpha balancing; Poly-1 reaches
    # it too: with gamma 0 it is CE + epsilon (1 - p_t) (optax's poly_loss_cross_entropy).
    options = {
        "gamma": loss.gamma if focal else 0.0,
        "gamma_schedule": gamma_schedule(loss) if focal else None,
        "poly_epsilon": loss.poly_epsilon,
        "class_weight": counts.class_weight,
        "from_logits": True,
    }
    if task not in SIGMOID_TASKS:
        if ignore_label is not None:
            options["ignore_class"] = ignore_label
        alpha = loss.alpha if focal else 1.0
        return lambda labels, logits: losses.sparse_categorical_focal_crossentropy(
            labels, logits, alpha=alpha, **options
        )
    auto_alpha = loss.alpha == "auto"
    alpha = counts.alpha if auto_alpha else loss.alpha
    # alpha = "auto" (each output's negative share) is meant to be applied.
    balanced = focal and (loss.apply_class_balancing or auto_alpha)
    return lambda labels, logits: losses.binary_focal_crossentropy(
        labels,
        logits,
        alpha=alpha,
        apply_class_balancing=balanced,
        label_smoothing=loss.label_smoothing,
        **options,
    )


def _asymmetric(loss):
    return lambda labels, logits: losses.asymmetric_loss(
        labels,
        logits,
        gamma_pos=loss.gamma_pos,
        gamma_neg=loss.gamma_neg,
        clip=loss.clip,
        from_logits=True,
    )


def _logit_adjusted(loss, counts, task):
    # The prior is the all-reduced histogram's (the task's label pass): a shard's would
    # differ from worker to worker.
    histogram, tau = counts.histogram, loss.tau
    if histogram is None:
        raise ValueError("loss.name='logit_adjusted' needs the label histogram: count first")
    if task == "multiclass":
        log_prior = losses.log_prior_from_counts(histogram.counts)
        return lambda labels, logits: losses.logit_adjusted_crossentropy(
            labels, logits, log_prior=log_prior, tau=tau
        )
    rate = histogram.positives / max(histogram.num_examples, 1)
    return lambda labels, logits: losses.logit_adjusted_binary_crossentropy(
        labels, logits, positive_rate=rate, tau=tau
    )
