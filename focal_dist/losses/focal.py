"""The focal losses' former module, kept so that imports written before the split work.

New code imports from `focal_dist.losses`; the losses live in one module per family
(binary.py, categorical.py, sparse_categorical.py) and their shared numerics in
_numerics.py.
"""

from focal_dist.losses._numerics import EPSILON, compute_dtype
from focal_dist.losses.binary import binary_focal_crossentropy
from focal_dist.losses.categorical import categorical_focal_crossentropy
from focal_dist.losses.sparse_categorical import (
    ignored_example_mask,
    sparse_categorical_focal_crossentropy,
)

__all__ = [
    "EPSILON",
    "binary_focal_crossentropy",
    "categorical_focal_crossentropy",
    "compute_dtype",
    "ignored_example_mask",
    "sparse_categorical_focal_crossentropy",
]
