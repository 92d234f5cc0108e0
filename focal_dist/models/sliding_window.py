r"""Sliding-window inference: a dense model's logits for one image of any size.

A window of h x w pixels (a size the model takes) slides over the image with stride
s = max(1, floor(h (1 - overlap))) along each axis (MONAI's scan interval). Along an
axis of size H >= h the starts are

    t_i = min(i s, H - h),   i = 0 .. n - 1,   n = ceil((H - h) / s) + 1

so every pixel is covered and the last window is aligned to the far edge. An image
smaller than the window is padded with zeros to the window's size, centred (MONAI's
symmetric constant padding), and the result cropped back. The blended logits are

    z(p) = sum_i g_i(p) z_i(p) / sum_i g_i(p)

over the windows i covering pixel p, z_i the window's logits and g_i the window's
importance weight at p: g(y, x) = g_h(y) g_w(x), each factor a Gaussian of sigma =
side / 8 (nnU-Net's) centred at (side - 1) / 2, scaled to a maximum of 1 and floored
at `FLOOR` so a window's border pixels still count. Because the weights factorise
and the starts form a grid, the denominator is the outer product of two 1-D sums.

Memory: each row of windows goes through the model `window_batch` windows at a time
in a `tf.while_loop` with `parallel_iterations=1` (otherwise graph mode may run several
batches' forward passes at once). Only the result and one band of h image rows of
summed logits outlive a batch; rows no later window reaches are normalised and
written out after each row of windows, each output row once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

SIGMA_SCALE = 1.0 / 8.0  # nnU-Net's sigma, as a share of the window side
FLOOR = 1e-3  # the 1-D profile's minimum: every pixel of a window has weight >= FLOOR^2


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in pair):
        raise ValueError(f"{name} must be a positive int or (height, width); got {value!r}")
    return int(pair[0]), int(pair[1])


def window_stride(window, overlap: float) -> tuple[int, int]:
    """(s_h, s_w) with s = max(1, floor(side * (1 - overlap))); overlap in [0, 1)."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1); got {overlap!r}")
    return tuple(max(1, int(side * (1.0 - overlap))) for side in _pair(window, "window"))


def window_starts(size, window: int, stride: int) -> tf.Tensor:
    """int32 [n]: t_i = min(i * stride, size - window), n = ceil((size - window) / stride)
    + 1, for a (possibly dynamic) axis of `size` >= `window`."""
    size = tf.cast(size, tf.int32)
    count = (size - window + stride - 1) // stride + 1
    return tf.minimum(tf.range(count) * stride, size - window)


def gaussian_profile(side: int) -> np.ndarray:
    """float32 [side]: g(i) = max(FLOOR, exp(-(i - c)^2 / (2 sigma^2)) / m), c = (side - 1)/2,
    sigma = side * SIGMA_SCALE, m the largest value before the floor."""
    offsets = np.arange(side, dtype=np.float64) - (side - 1) / 2.0
    profile = np.exp(-0.5 * (offsets / (side * SIGMA_SCALE)) ** 2)
    return np.maximum(profile / profile.max(), FLOOR).astype(np.float32)


def importance_weights(window) -> np.ndarray:
    """float32 [h, w]: g_h(y) g_w(x), the weight of each pixel of one window."""
    height, width = _pair(window, "window")
    return np.outer(gaussian_profile(height), gaussian_profile(width))


def _coverage(starts, profile: np.ndarray, size) -> tf.Tensor:
    """float32 [size]: sum over windows of the 1-D profile placed at each start."""
    side = len(profile)
    positions = starts[:, None] + tf.range(side)[None, :]
    values = tf.tile(tf.constant(profile)[None, :], [tf.size(starts), 1])
    return tf.scatter_nd(positions[..., None], values, [size])  # duplicates add up


def sliding_window_logits(
    model_fn: Callable[[tf.Tensor], tf.Tensor],
    image,
    *,
    window,
    overlap: float = 0.5,
    window_batch: int,
    num_classes: int,
) -> tf.Tensor:
    """float32 [H, W, K]: the Gaussian-blended logits of `model_fn` over one image.

    z(p) = sum_i g_i(p) z_i(p) / sum_i g_i(p) over the windows covering p (module
    docstring). For a model whose output at a pixel depends on that pixel alone, z
    equals the model applied to the whole image (up to float32 rounding).

    Args:
      model_fn: windows [b, h, w, C] float32 -> logits [b, h, w, K] (for a Keras
        model, `lambda x: model(x, training=False)`); b is 1 .. window_batch, never 0.
      image: [H, W, C] float, H and W any size >= 1 (dynamic in a tf.function).
      window: h or (h, w), a size the model takes (for a U-Net, multiples of
        2^(levels - 1)); the image need not be.
      overlap: share of a window shared with the next one along each axis, in [0, 1).
      window_batch: windows per model call; bounds the memory of the forward pass.
      num_classes: K, the logits per pixel.
    """
    height_w, width_w = _pair(window, "window")
    stride_h, stride_w = window_stride((height_w, width_w), overlap)
    if not isinstance(window_batch, (int, np.integer)) or window_batch < 1:
        raise ValueError(f"window_batch must be a positive int; got {window_batch!r}")
    image = tf.convert_to_tensor(image)
    if image.shape.rank != 3:
        raise ValueError(f"image must be one image [H, W, C]; got shape {image.shape}")
    image = tf.cast(image, tf.float32)
    channels = image.shape[-1] or tf.shape(image)[2]
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    pad_h = tf.maximum(height_w - height, 0)
    pad_w = tf.maximum(width_w - width, 0)
    pad_top, pad_left = pad_h // 2, pad_w // 2
    padded = tf.pad(image, [[pad_top, pad_h - pad_top], [pad_left, pad_w - pad_left], [0, 0]])
    padded_h, padded_w = height + pad_h, width + pad_w
    starts_y = window_starts(padded_h, height_w, stride_h)
    starts_x = window_starts(padded_w, width_w, stride_w)
    count_y, count_x = tf.size(starts_y), tf.size(starts_x)
    # Columns first: a window's pixels and logits are then contiguous [h, C] slices per
    # column, gathered and scatter-added as slices rather than pixel by pixel.
    columns_first = tf.transpose(padded, [1, 0, 2])  # [W', H', C]
    weights = tf.constant(importance_weights((height_w, width_w)).T)[None, :, :, None]
    coverage_y = _coverage(starts_y, gaussian_profile(height_w), padded_h)
    coverage_x = _coverage(starts_x, gaussian_profile(width_w), padded_w)
    offsets = tf.range(width_w)

    def window_row(row, carry, finished):
        """Adds row `row` of windows to `carry` (the sums of image rows t .. t + h, columns
        first), writes the rows no later window reaches, and shifts them out."""
        top = starts_y[row]
        band = columns_first[:, top : top + height_w]  # [W', h, C]

        def window_chunk(first, carry):
            ids = tf.range(first, tf.minimum(first + window_batch, count_x))
            columns = tf.reshape(tf.gather(starts_x, ids)[:, None] + offsets[None, :], [-1])
            windows = tf.reshape(tf.gather(band, columns), [-1, width_w, height_w, channels])
            logits = model_fn(tf.transpose(windows, [0, 2, 1, 3]))  # [b, h, w, K]
            logits = tf.ensure_shape(
                tf.cast(logits, tf.float32), [None, height_w, width_w, num_classes]
            )
            weighted = tf.transpose(logits, [0, 2, 1, 3]) * weights  # [b, w, h, K]
            flat = tf.reshape(weighted, [-1, height_w, num_classes])
            return first + window_batch, tf.tensor_scatter_nd_add(carry, columns[:, None], flat)

        _, carry = tf.while_loop(
            lambda first, _: first < count_x,
            window_chunk,
            (tf.constant(0), carry),
            parallel_iterations=1,  # one window batch's activations at a time
        )
        below = tf.where(row + 1 < count_y, starts_y[tf.minimum(row + 1, count_y - 1)], padded_h)
        done = below - top  # rows top .. below - 1 are final: later windows start lower
        normaliser = coverage_y[top:below][:, None, None] * coverage_x[None, :, None]
        finished = finished.write(row, tf.transpose(carry[:, :done], [1, 0, 2]) / normaliser)
        carry = tf.pad(carry[:, done:], [[0, 0], [0, done], [0, 0]])
        carry = tf.ensure_shape(carry, [None, height_w, num_classes])
        return row + 1, carry, finished

    _, _, finished = tf.while_loop(
        lambda row, *_: row < count_y,
        window_row,
        (
            tf.constant(0),
            tf.zeros([padded_w, height_w, num_classes]),
            tf.TensorArray(tf.float32, size=count_y, infer_shape=False),
        ),
        parallel_iterations=1,
    )
    # [H', W', K], each row written once; the shape is lost in the TensorArray.
    blended = tf.ensure_shape(finished.concat(), [None, None, num_classes])
    return blended[pad_top : pad_top + height, pad_left : pad_left + width]


__all__ = [
    "FLOOR",
    "SIGMA_SCALE",
    "gaussian_profile",
    "importance_weights",
    "sliding_window_logits",
    "window_starts",
    "window_stride",
]
