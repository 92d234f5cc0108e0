"""Focal losses that stay correct under distribution (docs/losses.md: which form where).

Functions return per-example losses; `compute_global_loss` turns them into this
replica's share of the global mean (docs/design.md), dividing by an all-reduced count or
normaliser. The Keras classes wrap the functions: by default a mean over the batch as
Keras's own (`model.compile`), `reduction="global_mean"` for an exact `model.fit` under
MirroredStrategy when replicas count different numbers of elements, and
`reduction="none"` for custom loops.
"""

from focal_dist.losses.classes import (
    BinaryFocalCrossentropy,
    CategoricalFocalCrossentropy,
    SparseCategoricalFocalCrossentropy,
)
from focal_dist.losses.focal import (
    binary_focal_crossentropy,
    categorical_focal_crossentropy,
    ignored_example_mask,
    sparse_categorical_focal_crossentropy,
)
from focal_dist.losses.reduction import compute_global_loss, scale_regularization_loss

__all__ = [
    "BinaryFocalCrossentropy",
    "CategoricalFocalCrossentropy",
    "SparseCategoricalFocalCrossentropy",
    "binary_focal_crossentropy",
    "categorical_focal_crossentropy",
    "compute_global_loss",
    "ignored_example_mask",
    "scale_regularization_loss",
    "sparse_categorical_focal_crossentropy",
]
