r"""8-connected components of masks in TensorFlow graph ops (SavedModel-safe, exact).

Pixel p = y W + x of an H x W map has the id p + 1. `label_components` gives every
mask pixel 1 + the largest p of its 8-connected component (0 off the mask): equal
labels <=> same component, the partition scipy.ndimage.label finds with a 3x3
structure of ones. The loop runs on the F mask pixels alone, numbered 1 .. F in flat
order (so the largest number is the largest id), and the ordered pairs of 8-adjacent
mask pixels; from l(i) = i it repeats

    m(i) = max(l(i), max over i's neighbours j of l(j))     (propagate)
    T(i) = max(m(i), max{m(j) : l(j) = i})                  (hook: a root hears its pixels)
    l(i) = T(T(i))                                          (pointer jumping)

until no label changes. Every l(i) is the number of a pixel of i's component, at
least i, and never decreases, so the loop ends; it ends only when m = l, where
neighbours agree and each component carries one label: its largest number. Hooking
and jumping get there in a few dozen iterations (17 for a 512 x 512 serpentine, one
path of 131,000 pixels) where propagation alone needs the longest path's length.
Sizes follow from one segment sum over the labels.
"""

from __future__ import annotations

import tensorflow as tf

# 8-connectivity: the (dy, dx) of a pixel's neighbours.
_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _edges(masks):
    """(positions [F], sources [E], targets [E]) of the F mask pixels of [B, H, W]
    `masks`, in flat order: each pixel's flat position in B H W, and every ordered pair
    of 8-adjacent mask pixels as compact ids 1 .. F (their rank in flat order)."""
    shape = tf.shape(masks, out_type=tf.int64)  # padded positions may pass 2^31
    height, width = shape[1], shape[2]
    flat = tf.reshape(masks, [-1])
    positions = tf.where(flat)[:, 0]
    compact = tf.reshape(tf.cumsum(tf.cast(flat, tf.int32)) * tf.cast(flat, tf.int32), shape)
    padded = tf.reshape(tf.pad(compact, [[0, 0], [1, 1], [1, 1]]), [-1])
    image, within = positions // (height * width), positions % (height * width)
    row, column = within // width, within % width
    centre = image * (height + 2) * (width + 2) + (row + 1) * (width + 2) + column + 1
    offsets = tf.constant([dy for dy, _ in _NEIGHBOURS], tf.int64) * (width + 2) + tf.constant(
        [dx for _, dx in _NEIGHBOURS], tf.int64
    )
    neighbours = tf.gather(padded, centre[:, None] + offsets[None, :])  # [F, 8], 0: off
    count = tf.shape(positions)[0]
    sources = tf.broadcast_to(tf.range(1, count + 1)[:, None], tf.shape(neighbours))
    adjacent = neighbours > 0
    return positions, tf.boolean_mask(sources, adjacent), tf.boolean_mask(neighbours, adjacent)


def label_components(masks) -> tuple[tf.Tensor, tf.Tensor]:
    """(labels int32 [B, H, W], iterations int32) of boolean `masks` [B, H, W].

    labels[b, y, x] = 1 + max{y' W + x' : (y', x') in the 8-connected component of
    (y, x) in masks[b]}, 0 off the mask. Works on the mask pixels and their adjacent
    pairs alone: an iteration costs O(F + E), not O(H W). Requires B H W < 2^31.
    """
    masks = tf.convert_to_tensor(masks, tf.bool)
    shape = tf.shape(masks)
    positions, sources, targets = _edges(masks)
    slots = tf.shape(positions)[0] + 1  # compact ids, and 0 for "off the mask"

    def step(labels, iterations, _):
        across = tf.math.unsorted_segment_max(tf.gather(labels, targets), sources, slots)
        largest = tf.maximum(labels, across)  # m; empty segments hold int32's minimum
        table = tf.maximum(largest, tf.math.unsorted_segment_max(largest, labels, slots))
        jumped = tf.gather(table, table)  # T[T[i]]
        return jumped, iterations + 1, tf.reduce_any(tf.not_equal(jumped, labels))

    labels, iterations, _ = tf.while_loop(
        lambda labels, iterations, changed: changed,
        step,
        (tf.range(slots), tf.constant(0), tf.constant(True)),
        parallel_iterations=1,
    )
    pixels = tf.cast(shape[1] * shape[2], tf.int64)
    pixel_ids = tf.pad(tf.cast(positions % pixels + 1, tf.int32), [[1, 0]])
    dense = tf.scatter_nd(
        positions[:, None],
        tf.gather(pixel_ids, labels[1:]),
        tf.size(masks, out_type=tf.int64)[None],
    )
    return tf.reshape(dense, shape), iterations


def component_sizes(labels) -> tf.Tensor:
    """int32 [B, H, W]: the number of pixels of each pixel's component (0 off the mask),
    from `label_components`' labels."""
    labels = tf.convert_to_tensor(labels, tf.int32)
    shape = tf.shape(labels)
    batch, slots = shape[0], shape[1] * shape[2] + 1
    segments = tf.reshape(labels + tf.range(batch)[:, None, None] * slots, [-1])
    on_mask = tf.cast(tf.reshape(labels, [-1]) > 0, tf.int32)
    sizes = tf.math.unsorted_segment_sum(on_mask, segments, batch * slots)
    return tf.where(labels > 0, tf.reshape(tf.gather(sizes, segments), shape), 0)


def class_masks(mask, num_classes: int) -> tf.Tensor:
    """bool [B, K - 1, H, W]: mask == c for each foreground class c = 1 .. K - 1 of class
    ids [B, H, W] (other values, e.g. an ignore label, are in no class)."""
    classes = tf.range(1, num_classes, dtype=tf.int64)[None, :, None, None]
    return tf.equal(tf.cast(mask, tf.int64)[:, None], classes)


def remove_small_components(mask, min_pixels, num_classes: int) -> tf.Tensor:
    """Class ids like `mask` ([H, W] or [B, H, W]) with every 8-connected component of a
    foreground class that has fewer than `min_pixels` pixels set to 0 (background).

    out(p) = 0 if mask(p) = c >= 1 and |component of p in {mask = c}| < min_pixels[c - 1],
    else mask(p). `min_pixels`: a scalar or one per foreground class [K - 1]; 0 or 1
    keeps everything.
    """
    mask = tf.convert_to_tensor(mask)
    if mask.shape.rank not in (2, 3):
        raise ValueError(f"mask must be class ids [H, W] or [B, H, W]; got shape {mask.shape}")
    single = mask.shape.rank == 2
    batched = mask[None] if single else mask
    shape = tf.shape(batched)
    masks = class_masks(batched, num_classes)  # [B, K-1, H, W]
    flat = tf.reshape(masks, [-1, shape[1], shape[2]])
    labels, _ = label_components(flat)
    sizes = tf.reshape(component_sizes(labels), tf.shape(masks))
    floor = tf.broadcast_to(tf.cast(min_pixels, tf.int32), [num_classes - 1])
    small = tf.reduce_any(masks & (sizes < floor[None, :, None, None]), axis=1)
    kept = tf.where(small, tf.zeros_like(batched), batched)
    return kept[0] if single else kept
