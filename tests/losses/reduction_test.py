"""compute_global_loss: the global mean of docs/design.md, on one device and on 4 replicas."""

import numpy as np
import pytest
import tensorflow as tf

from focal_dist import losses as fl
from tests.conftest import NUM_LOGICAL_CPUS


def _reference_mean(per_example, weights=None, mask=None):
    per_example = np.asarray(per_example, np.float64)
    w = np.ones_like(per_example) if weights is None else np.asarray(weights, np.float64)
    m = np.ones_like(per_example) if mask is None else np.asarray(mask, np.float64)
    return (per_example * w * m).sum() / m.sum()


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_single_device_is_the_weighted_mean_over_the_batch(mode):
    rng = np.random.default_rng(0)
    losses, weights = rng.random(13).astype("f4"), rng.random(13).astype("f4")
    fn = fl.compute_global_loss
    if mode != "eager":
        fn = tf.function(fn, jit_compile=mode == "xla")
    value = fn(tf.constant(losses), tf.constant(weights))
    np.testing.assert_allclose(value.numpy(), _reference_mean(losses, weights), rtol=1e-6)


def test_explicit_global_batch_size_divides_by_it():
    losses = np.arange(6, dtype="f4")
    value = fl.compute_global_loss(losses, global_batch_size=10)
    np.testing.assert_allclose(value.numpy(), losses.sum() / 10, rtol=1e-7)


def test_sample_weight_of_shape_batch_broadcasts_over_extra_loss_axes():
    losses = np.arange(12, dtype="f4").reshape(4, 3)
    weights = np.array([1.0, 0.0, 2.0, 0.5], "f4")
    value = fl.compute_global_loss(losses, weights)
    np.testing.assert_allclose(
        value.numpy(), (losses * weights[:, None]).sum() / losses.size, rtol=1e-6
    )


def test_masked_examples_add_nothing_and_are_not_counted_even_when_nan():
    losses = np.array([1.0, np.nan, 3.0, 5.0], "f4")
    mask = np.array([True, False, True, False])
    value = fl.compute_global_loss(losses, mask=mask)
    np.testing.assert_allclose(value.numpy(), 2.0, rtol=1e-7)
    assert fl.compute_global_loss(losses, mask=np.zeros(4, bool)).numpy() == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(global_batch_size=0), r"global_batch_size.*positive.*0"),
        (dict(global_batch_size=-3), r"global_batch_size.*-3"),
        (dict(sample_weight=np.ones(5)), r"sample_weight of shape \(5,\).*\(4,\)"),
        (dict(backend="nccl"), r"backend.*'nccl'"),
    ],
)
def test_bad_arguments_name_the_argument_and_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fl.compute_global_loss(np.ones(4, "f4"), **kwargs)


def test_cross_replica_context_of_a_multi_replica_strategy_is_refused():
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(2)])
    with strategy.scope(), pytest.raises(ValueError, match="strategy.run"):
        fl.compute_global_loss(np.ones(4, "f4"))


def _run_on_replicas(strategy, per_replica_losses, per_replica_weights, **kwargs):
    """Runs compute_global_loss on each replica's slice and SUMs the results."""

    def value_fn(ctx):
        return (
            tf.constant(per_replica_losses[ctx.replica_id_in_sync_group]),
            tf.constant(per_replica_weights[ctx.replica_id_in_sync_group]),
        )

    losses = strategy.experimental_distribute_values_from_function(lambda c: value_fn(c)[0])
    weights = strategy.experimental_distribute_values_from_function(lambda c: value_fn(c)[1])

    @tf.function
    def step(losses, weights):
        return strategy.run(
            lambda loss, w: fl.compute_global_loss(loss, w, **kwargs), args=(losses, weights)
        )

    per_replica = step(losses, weights)
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)


def test_mirrored_four_replicas_with_uneven_and_empty_batches_match_single_device():
    assert len(tf.config.list_logical_devices("CPU")) == NUM_LOGICAL_CPUS
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(NUM_LOGICAL_CPUS)])
    rng = np.random.default_rng(1)
    # A short last global batch: 7 + 5 + 3 + 0 examples over 4 replicas.
    sizes = [7, 5, 3, 0]
    losses = [rng.random(n).astype("f4") for n in sizes]
    weights = [rng.uniform(0, 2, n).astype("f4") for n in sizes]
    total = _run_on_replicas(strategy, losses, weights)
    expected = _reference_mean(np.concatenate(losses), np.concatenate(weights))
    np.testing.assert_allclose(total.numpy(), expected, rtol=1e-6)
    # The focal loss, end to end: per-example loss on each replica, then the global mean.
    logits = [rng.normal(size=(n, 3)).astype("f4") for n in sizes]
    labels = [(rng.random((n, 3)) < 0.2).astype("f4") for n in sizes]
    per_example = [
        fl.binary_focal_crossentropy(y, x, from_logits=True).numpy()
        for y, x in zip(labels, logits, strict=True)
    ]
    total = _run_on_replicas(strategy, per_example, weights)
    single = fl.compute_global_loss(np.concatenate(per_example), np.concatenate(weights))
    np.testing.assert_allclose(total.numpy(), single.numpy(), rtol=1e-6)


def test_mirrored_with_fixed_global_batch_size_divides_every_replica_by_it():
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(2)])
    losses = [np.array([1.0, 2.0], "f4"), np.array([3.0], "f4")]
    weights = [np.ones(2, "f4"), np.ones(1, "f4")]
    total = _run_on_replicas(strategy, losses, weights, global_batch_size=4)
    np.testing.assert_allclose(total.numpy(), 6.0 / 4, rtol=1e-7)


def test_scale_regularization_loss_divides_by_the_replica_count():
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(NUM_LOGICAL_CPUS)])

    @tf.function
    def step():
        return strategy.run(lambda: fl.scale_regularization_loss([tf.constant(2.0), 6.0]))

    total = strategy.reduce(tf.distribute.ReduceOp.SUM, step(), axis=None)
    np.testing.assert_allclose(total.numpy(), 8.0, rtol=1e-7)
    assert fl.scale_regularization_loss([tf.constant(2.0), 6.0]).numpy() == 8.0
