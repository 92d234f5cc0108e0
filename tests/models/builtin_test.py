"""Every built-in model builds with the task's width and trains; the registry and its errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from focal_dist import configs, models

# (name, one example's shape, options): the backbones at their smallest resolution.
BUILT_INS = [
    ("mlp", (8,), {"hidden_units": (16,)}),
    ("cnn", (16, 16, 3), {"filters": (8, 16)}),
    ("resnet50", (32, 32, 3), {}),
    ("efficientnet_b0", (32, 32, 1), {}),
]


def _one_training_step(model, input_shape, num_outputs):
    """Loss before and after one SGD step on a fixed batch, and every gradient."""
    rng = np.random.default_rng(0)
    features = rng.uniform(size=(4, *input_shape)).astype(np.float32)
    labels = rng.integers(0, num_outputs, size=4)
    optimizer = keras.optimizers.SGD(0.05)

    def loss_fn(training):
        logits = model(features, training=training)
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        )

    with tf.GradientTape() as tape:
        loss = loss_fn(training=True)
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
    return gradients


@pytest.mark.parametrize(
    ("name", "input_shape", "options"), BUILT_INS, ids=[b[0] for b in BUILT_INS]
)
def test_built_in_model_gives_logits_of_the_task_width_and_trains_one_step(
    name, input_shape, options
):
    model = models.build_model(
        name, num_outputs=3, input_shape=input_shape, seed=1, l2=1e-4, **options
    )
    assert model.output_shape == (None, 3)
    assert model.input_shape == (None, *input_shape)
    # l2 reaches every kernel: at least one penalty per weight layer.
    assert len(model.losses) >= 2
    before = [v.numpy().copy() for v in model.trainable_variables]
    gradients = _one_training_step(model, input_shape, 3)
    assert all(g is not None and np.all(np.isfinite(g)) for g in gradients)
    changed = [
        not np.array_equal(b, v.numpy())
        for b, v in zip(before, model.trainable_variables, strict=True)
    ]
    # The logits layer (last kernel and bias) and the first layer both moved.
    assert changed[0]
    assert changed[-2]
    assert changed[-1]


@pytest.mark.parametrize("name", ["cnn", "efficientnet_b0"])
def test_the_same_seed_builds_the_same_weights_on_every_worker(name):
    shape = (32, 32, 3)
    first, second, other = (
        models.build_model(name, num_outputs=2, input_shape=shape, seed=seed) for seed in (3, 3, 4)
    )
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(
        np.array_equal(a, c) for a, c in zip(first.get_weights(), other.get_weights(), strict=True)
    )


def test_config_section_picks_each_builders_own_options():
    section = configs.get_config("default").model
    section.name, section.hidden_units, section.filters = "cnn", (5,), (4,)
    model = models.build_model(section, num_outputs=6, input_shape=(8, 8, 1))
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [layer.filters for layer in convolutions] == [4, 4]
    assert model.output_shape == (None, 6)


def test_unknown_model_name_lists_the_built_ins():
    with pytest.raises(
        ValueError,
        match=r"model.name must be one of mlp, cnn, resnet50, "
        r"efficientnet_b0, unet or 'module:function'.*got 'vgg'",
    ):
        models.build_model("vgg", num_outputs=1, input_shape=(8,))


@pytest.mark.parametrize(
    ("name", "input_shape", "message"),
    [
        ("mlp", (8, 8, 3), r"model 'mlp' takes flat feature vectors.*got \(8, 8, 3\)"),
        ("cnn", (8,), r"model 'cnn' takes images.*got \(8,\)"),
        (
            "resnet50",
            (16, 16, 3),
            r"model 'resnet50' takes images of at least 32x32.*\(16, 16, 3\)",
        ),
    ],
)
def test_a_model_given_the_wrong_kind_of_input_says_what_it_takes(name, input_shape, message):
    with pytest.raises(ValueError, match=message):
        models.build_model(name, num_outputs=2, input_shape=input_shape)


def test_registered_builder_is_built_by_name():
    def tiny(*, num_outputs, input_shape, seed, l2):
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, keras.layers.Dense(num_outputs)(inputs), name="tiny")

    models.register("tiny_for_test", tiny)
    assert "tiny_for_test" in models.names()
    assert models.build_model("tiny_for_test", num_outputs=4, input_shape=(3,)).name == "tiny"
