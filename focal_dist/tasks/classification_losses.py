"""The per-example losses a classification task trains with, by `loss.name`.

Each entry maps (task, labels, logits) to per-example losses [B] with what the task
counted in `prepare` (class weights, alpha per output, the label prior). bce and asl
are for binary and multi-label tasks, ce for multiclass; focal and logit_adjusted for
all three (the config check refuses the rest, and any `loss.*` value a loss does
not read: training/config_check/loss_fields.py).
"""

from __future__ import annotations

from focal_dist import losses


def gamma_schedule(loss) -> str | None:
    """`loss.gamma_schedule` as the focal losses take it (None: a constant gamma)."""
    return None if loss.gamma_schedule in ("", "none") else loss.gamma_schedule


def _focal(task, labels, logits, *, focal=True):
    loss = task.config.loss
    # Poly-1 reaches cross-entropy too: with gamma 0 it is CE + epsilon (1 - p_t), the
    # PolyLoss of Leng et al. (optax's poly_loss_cross_entropy).
    options = {"poly_epsilon": loss.poly_epsilon}
    if focal:
        options["gamma_schedule"] = gamma_schedule(loss)
    gamma = loss.gamma if focal else 0.0
    if task.name == "multiclass":
        return losses.sparse_categorical_focal_crossentropy(
            labels,
            logits,
            gamma=gamma,
            alpha=loss.alpha if focal else 1.0,
            from_logits=True,
            class_weight=task.class_weight,
            **options,
        )
    auto_alpha = loss.alpha == "auto"
    return losses.binary_focal_crossentropy(
        labels,
        logits,
        gamma=gamma,
        alpha=task.alpha if auto_alpha else loss.alpha,
        # alpha = "auto" (each output's negative share) is meant to be applied.
        apply_class_balancing=focal and (loss.apply_class_balancing or auto_alpha),
        from_logits=True,
        label_smoothing=loss.label_smoothing,
        class_weight=task.class_weight,
        **options,
    )


def _cross_entropy(task, labels, logits):
    # Cross-entropy is focal loss with gamma = 0 and no alpha balancing.
    return _focal(task, labels, logits, focal=False)


def _asymmetric(task, labels, logits):
    loss = task.config.loss
    return losses.asymmetric_loss(
        labels,
        logits,
        gamma_pos=loss.gamma_pos,
        gamma_neg=loss.gamma_neg,
        clip=loss.clip,
        from_logits=True,
    )


def _logit_adjusted(task, labels, logits):
    # The prior is the all-reduced histogram's (prepare): a shard's would differ.
    histogram, tau = task.histogram, task.config.loss.tau
    if task.name == "multiclass":
        log_prior = losses.log_prior_from_counts(histogram.counts)
        return losses.logit_adjusted_crossentropy(labels, logits, log_prior=log_prior, tau=tau)
    rate = histogram.positives / max(histogram.num_examples, 1)
    return losses.logit_adjusted_binary_crossentropy(labels, logits, positive_rate=rate, tau=tau)


LOSSES = {
    "focal": _focal,
    "bce": _cross_entropy,
    "ce": _cross_entropy,
    "asl": _asymmetric,
    "logit_adjusted": _logit_adjusted,
}
# Losses that need the label histogram whatever loss.class_weights says.
NEEDS_HISTOGRAM = ("logit_adjusted",)
