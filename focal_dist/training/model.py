"""Old home of the optimizer and the MLP builder, kept for existing imports.

The optimizer is in `focal_dist.training.optimizers`, the MLP in `focal_dist.models.mlp`.
"""

from focal_dist.models.mlp import build_mlp
from focal_dist.training.optimizers import WarmupCosine, build_optimizer

__all__ = ["WarmupCosine", "build_mlp", "build_optimizer"]
