"""Small Keras models, their calibration and tf.train.Example rows for the export tests."""

import base64

import keras
import numpy as np
import tensorflow as tf

from focal_dist.distribute import get_backend
from focal_dist.serving import choose_threshold, fit_calibration

BACKEND = get_backend("default")


def mlp(num_features, num_outputs, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((num_features,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(num_outputs)(hidden))


def cnn(num_classes):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def example(**features):
    feature = {
        name: tf.train.Feature(float_list=tf.train.FloatList(value=np.atleast_1d(values)))
        for name, values in features.items()
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def b64(values):
    return [base64.b64encode(v).decode() for v in values]


def fitted(model, features, label_mode, rng, **options):
    logits = model.predict(features, verbose=0)
    if label_mode == "sparse":
        labels = rng.integers(0, logits.shape[1], len(logits))
    else:
        labels = (rng.random(logits.shape) < 1 / (1 + np.exp(-logits))).astype(float)
    calibration = fit_calibration(logits, labels, label_mode=label_mode, backend=BACKEND, **options)
    thresholds = None
    if label_mode != "sparse":
        probabilities = calibration.apply_numpy(logits)
        thresholds = choose_threshold(
            probabilities, labels, target="f1", backend=BACKEND
        ).thresholds
    return calibration, thresholds
