"""Every config value checked before a run writes anything.

`validate_config(config)` raises one `ConfigError` listing every bad field, each as
`<field> must be <what was expected>; got <value>`. For file sources it also opens the
files' headers (CSV), schemas (Parquet) or first records (TFRecord): the data path must
exist and `data.num_features` must be 0 (read from the files) or match them.

Fields that a config does not have are skipped: a config may drop what it does not use.
"""

from __future__ import annotations

from focal_dist.training.config_check.checker import Checker, ConfigError
from focal_dist.training.config_check.data import check_data
from focal_dist.training.config_check.experiment import check_model, check_task_and_loss
from focal_dist.training.config_check.loop import check_optimizer_and_train
from focal_dist.training.config_check.loss_fields import check_loss_fields
from focal_dist.training.config_check.segmentation import check_segmentation

__all__ = ["ConfigError", "validate_config"]


def validate_config(
    config,
    *,
    num_replicas: int | None = None,
    training_only: bool = False,
    distribution: str | None = None,
) -> None:
    """Raises ConfigError naming every invalid field, its value and what was expected.

    Args:
      config: the experiment ConfigDict (configs/default.py's fields).
      num_replicas: when known, `train.global_batch_size` must be divisible by it.
      training_only: check only `optimizer` and `train` (a user's own Task brings its
        own model, data and loss).
      distribution: the backend's name, when known (what it can send).
    """
    check = Checker(config)
    if not training_only:
        check_task_and_loss(check, config)
        check_loss_fields(check, config)
        check_model(check, config)
    check_optimizer_and_train(check, config, num_replicas, distribution)
    if not training_only:
        check_data(check, config)
        check_segmentation(check, config, num_replicas)
    if check.errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(check.errors))
