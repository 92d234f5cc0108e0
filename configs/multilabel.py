"""Synthetic multi-label data: 5 outputs with positive rates 1%, 2%, 4%, 8%, 16%."""

from focal_dist.configs import default


def get_config():
    config = default.get_config()
    config.task.name = "multi_label"
    config.task.num_classes = 5
    return config
