"""The segmentation fields are checked before a run writes anything: the shipped config
is valid, and each bad value is named with what was expected."""

import pytest

from focal_dist.configs import default, segmentation
from focal_dist.training.config_check import ConfigError, validate_config


def _error(config, num_replicas=None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_config(config, num_replicas=num_replicas)
    return [line.strip() for line in str(caught.value).splitlines()[1:]]


def test_the_shipped_segmentation_config_is_valid():
    validate_config(segmentation.get_config(), num_replicas=4)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "data.ignore_label",
            2,
            "data.ignore_label must be an integer in [task.num_classes, 255] = [3, 255]; got 2",
        ),
        (
            "data.source",
            "image_folder",
            "data.source must be one of segmentation_folder, "
            "segmentation_tfrecord, segmentation_synthetic for task.name='segmentation'",
        ),
        ("loss.dice_weight", -1.0, "loss.dice_weight must be a finite number >= 0; got -1.0"),
        ("loss.name", "asl", "loss.name must be one of focal, ce for task.name='segmentation'"),
        ("model.widths", (16, 0), "model.widths must be a tuple of integers >= 1"),
        ("task.num_classes", 1, "task.num_classes must be an integer >= 2; got 1"),
        ("task.eval_images", -1, "task.eval_images must be an integer >= 0; got -1"),
    ],
)
def test_a_bad_segmentation_field_is_named(field, value, message):
    config = segmentation.get_config()
    section, leaf = field.split(".")
    config[section][leaf] = value
    assert any(line.startswith(message) for line in _error(config)), _error(config)


def test_synchronized_batch_norm_with_xla_on_several_replicas_is_refused():
    config = segmentation.get_config()
    config.model.sync_batch_norm = True
    config.train.jit_compile = True
    validate_config(config, num_replicas=1)
    assert _error(config, num_replicas=2) == [
        "model.sync_batch_norm must be False with train.jit_compile on several replicas; got True"
    ]


def test_a_segmentation_source_needs_the_segmentation_task():
    config = default.get_config()
    config.data.source = "segmentation_synthetic"
    assert any(
        line.startswith("data.source must be used with task.name='segmentation' only")
        for line in _error(config)
    )
