"""The learning-rate schedule and the optimizer built from the config."""

import math

import numpy as np
import pytest
from ml_collections import config_dict

from focal_dist.training.optimizers import WarmupCosine, build_optimizer


def test_warmup_then_cosine_decay_to_zero():
    schedule = WarmupCosine(peak=0.1, warmup_steps=10, total_steps=110)
    rates = [float(schedule(step)) for step in range(0, 111)]
    np.testing.assert_allclose(rates[:10], [0.1 * (s + 1) / 10 for s in range(10)], rtol=1e-6)
    for step in (10, 35, 60, 85, 110):
        expected = 0.1 * 0.5 * (1 + math.cos(math.pi * (step - 10) / 100))
        assert rates[step] == pytest.approx(expected, abs=1e-7)


def test_constant_schedule_without_warmup_is_the_peak():
    schedule = WarmupCosine(peak=0.3, warmup_steps=0, total_steps=10, decay="constant")
    assert [float(schedule(s)) for s in (0, 5, 50)] == pytest.approx([0.3] * 3)


def _optimizer_config(name="sgd", scale=False):
    return config_dict.ConfigDict(
        dict(
            name=name,
            learning_rate=0.01,
            momentum=0.9,
            warmup_steps=0,
            decay="constant",
            total_steps=10,
            scale_lr_by_replicas=scale,
        )
    )


@pytest.mark.parametrize("scale", [False, True])
def test_learning_rate_scales_with_the_replica_count_when_asked(scale):
    optimizer = build_optimizer(_optimizer_config(scale=scale), num_replicas=8)
    assert float(optimizer.learning_rate) == pytest.approx(0.08 if scale else 0.01)


def test_unknown_optimizer_is_named():
    with pytest.raises(
        ValueError, match=r"optimizer.name must be sgd, momentum or adam; got 'lamb'"
    ):
        build_optimizer(_optimizer_config("lamb"), 1)
