"""Gradients of the losses: TensorFlow's, in float32 or float64, and central differences."""

import numpy as np
import tensorflow as tf


def loss_and_gradient(fn, y_true, y_pred, dtype=tf.float32, **kwargs):
    """(sum of the loss, its gradient w.r.t. y_pred) as NumPy values."""
    y_pred = tf.constant(y_pred, dtype)
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        loss = tf.reduce_sum(fn(y_true, y_pred, **kwargs))
    return loss.numpy(), tape.gradient(loss, y_pred).numpy()


def finite_difference_gradient(fn, x, h=1e-6):
    """Central differences of the scalar fn at x, one coordinate at a time."""
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        numeric[index] = (fn(up) - fn(down)) / (2 * h)
    return numeric
