"""Imbalance losses that stay correct under distribution (docs/losses.md: which form where).

One module per family: `binary` (binary and multi-label focal), `categorical` and
`sparse_categorical` (softmax focal), `asymmetric` (ASL), `logit_adjustment` (the class
prior in the loss or at prediction); `classes` holds the thin Keras classes and
`_numerics` the shared log-space numerics.

Functions return per-example losses; `compute_global_loss` turns them into this
replica's share of the global mean (docs/design.md), dividing by an all-reduced count or
normaliser. The Keras classes wrap the functions: by default a mean over the batch as
Keras's own (`model.compile`), `reduction="global_mean"` for an exact `model.fit` under
MirroredStrategy when replicas count different numbers of elements, and
`reduction="none"` for custom loops.
"""

from focal_dist.losses.asymmetric import asymmetric_loss
from focal_dist.losses.binary import binary_focal_crossentropy
from focal_dist.losses.categorical import categorical_focal_crossentropy
from focal_dist.losses.classes import (
    AsymmetricLoss,
    BinaryFocalCrossentropy,
    CategoricalFocalCrossentropy,
    LogitAdjustedBinaryCrossentropy,
    LogitAdjustedCrossentropy,
    SparseCategoricalFocalCrossentropy,
)
from focal_dist.losses.logit_adjustment import (
    adjust_binary_logits,
    adjust_logits,
    log_prior_from_counts,
    logit_adjusted_binary_crossentropy,
    logit_adjusted_crossentropy,
)
from focal_dist.losses.reduction import compute_global_loss, scale_regularization_loss
from focal_dist.losses.sparse_categorical import (
    ignored_example_mask,
    sparse_categorical_focal_crossentropy,
)

__all__ = [
    "AsymmetricLoss",
    "BinaryFocalCrossentropy",
    "CategoricalFocalCrossentropy",
    "LogitAdjustedBinaryCrossentropy",
    "LogitAdjustedCrossentropy",
    "SparseCategoricalFocalCrossentropy",
    "adjust_binary_logits",
    "adjust_logits",
    "asymmetric_loss",
    "binary_focal_crossentropy",
    "categorical_focal_crossentropy",
    "compute_global_loss",
    "ignored_example_mask",
    "log_prior_from_counts",
    "logit_adjusted_binary_crossentropy",
    "logit_adjusted_crossentropy",
    "scale_regularization_loss",
    "sparse_categorical_focal_crossentropy",
]
