"""Synthetic multi-class data: 6 classes with priors proportional to 2^-c."""

from focal_dist.configs import default


def get_config():
    config = default.get_config()
    config.task.name = "multiclass"
    config.task.num_classes = 6
    config.loss.name = "focal"  # sparse categorical focal loss; "ce" for cross-entropy
    config.loss.alpha = 1.0
    return config
