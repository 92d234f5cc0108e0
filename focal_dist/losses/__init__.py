"""Focal losses that stay correct under distribution.

Functions return per-example losses; `compute_global_loss` turns them into this
replica's share of the global mean (docs/design.md); the classes wrap the functions for
`model.compile` and custom loops.
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
