"""Images with per-pixel class masks: decoding, checking, joint augmentation, resizing.

A mask is a single-channel 8-bit PNG of class ids, the size of its image: each pixel is a
class in [0, num_classes) or `ignore_label` (not counted in the loss, the metrics or the
pixel histogram). Training crops and flips the image and its mask with one draw (the
crop covers `crop_min_area` to all of the image, aspect ratio 3/4 to 4/3, as image
classification's); then the image is resized bilinearly and the mask by nearest
neighbour to `image_size`. Evaluation resizes both without augmentation; serving and
batch prediction decode an image alone the same way (`decode_image`). The randomness
of example i of pipeline p is a stateless function of (seed, p, i), so a resumed run
sees the augmentations it would have seen.

A mask whose size differs from its image's, with a class id at or above num_classes
other than the ignore label, or whose bytes are not a single-channel PNG, fails with a
message that names it (`describe`). The pass before training takes the image's size
from its decoded pixels (`pixel_counts`), so an image that cannot be decoded is found
there too (data/bad_files.py); `valid_pixel_ids` (the histogram CLI) reads its header.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from focal_dist.data import images, unreadable

_PNG = b"\x89PNG"
_JPEG = b"\xff\xd8\xff"


@dataclasses.dataclass(frozen=True)
class MaskOptions:
    """How an image and its mask are decoded, checked and augmented.

    Attributes:
      image: the image's options (size, channels, augment, crop_min_area).
      num_classes: C, background included.
      ignore_label: the mask value of pixels that count nowhere (Model Garden's 255).
    """

    image: images.ImageOptions
    num_classes: int
    ignore_label: int = 255

    def __post_init__(self):
        if not 2 <= self.num_classes <= 255:
            raise ValueError(
                f"task.num_classes must be in [2, 255] for 8-bit masks; got {self.num_classes!r}"
            )
        if not self.num_classes <= self.ignore_label <= 255:
            raise ValueError(
                f"data.ignore_label must be in [task.num_classes, 255] = "
                f"[{self.num_classes}, 255] (not a class id); got {self.ignore_label!r}"
            )


def decode_mask(encoded, options: MaskOptions, *, describe=()) -> tf.Tensor:
    """int64 [h, w] class ids of one PNG mask, each checked (see the module docstring)."""
    is_png = tf.equal(tf.strings.substr(encoded, 0, len(_PNG)), _PNG)
    check = tf.debugging.Assert(is_png, [*describe, ": not a PNG image"])
    with tf.control_dependencies([check]):
        decoded = tf.io.decode_png(encoded, channels=0, dtype=tf.uint8)
    channels = tf.shape(decoded)[-1]
    one_channel = tf.debugging.Assert(
        tf.equal(channels, 1),
        [*describe, ": a mask must have one channel of class ids; it has", channels],
    )
    mask = tf.cast(decoded[..., 0], tf.int64)
    valid = tf.logical_or(mask < options.num_classes, tf.equal(mask, options.ignore_label))

    def refuse():
        # The offending ids are gathered here only: a valid mask costs one reduction.
        bad = tf.unique(tf.boolean_mask(mask, tf.logical_not(valid)))[0][:10]
        message = (
            f": class ids must be in [0, {options.num_classes}) or the ignore label "
            f"{options.ignore_label}; found"
        )
        with tf.control_dependencies([tf.debugging.Assert(False, [*describe, message, bad])]):
            return tf.constant(False)

    ids = tf.cond(tf.reduce_all(valid), lambda: tf.constant(True), refuse)
    with tf.control_dependencies([one_channel, ids]):
        return tf.identity(mask)


def image_size(encoded) -> tf.Tensor:
    """int32 [2] (height, width) of encoded image bytes: from a PNG's or JPEG's header, or
    by decoding another format."""

    def png():
        header = tf.cast(tf.io.decode_raw(tf.strings.substr(encoded, 16, 8), tf.uint8), tf.int32)
        width, height = (
            header[i] * 16777216 + header[i + 1] * 65536 + header[i + 2] * 256 + header[i + 3]
            for i in (0, 4)
        )
        return tf.stack([height, width])

    def other():
        return tf.cond(
            tf.equal(tf.strings.substr(encoded, 0, len(_JPEG)), _JPEG),
            lambda: tf.io.extract_jpeg_shape(encoded)[:2],
            lambda: tf.shape(tf.io.decode_image(encoded, expand_animations=False))[:2],
        )

    return tf.cond(tf.equal(tf.strings.substr(encoded, 0, len(_PNG)), _PNG), png, other)


def _same_size(image_hw, mask, describe):
    mask_hw = tf.shape(mask)[:2]
    return tf.debugging.Assert(
        tf.reduce_all(tf.equal(image_hw, mask_hw)),
        [*describe, ": mask size", mask_hw, "differs from its image's", image_hw],
    )


def valid_pixel_ids(image_bytes, mask_bytes, options: MaskOptions, *, describe=()) -> tf.Tensor:
    """1-D int64: the class ids of the mask's valid pixels (ignored ones dropped), the mask
    checked against its image's size; the image is not decoded (PNG and JPEG)."""
    mask = decode_mask(mask_bytes, options, describe=describe)
    with tf.control_dependencies([_same_size(image_size(image_bytes), mask, describe)]):
        return tf.boolean_mask(mask, tf.not_equal(mask, options.ignore_label))


def pixel_counts(image_hw, mask_bytes, options: MaskOptions, *, describe=()) -> tf.Tensor:
    """int64 [num_classes]: the valid pixels of each class of one mask, the mask checked
    (`decode_mask`) and against its image's (height, width) `image_hw`, which the pass
    before training takes from the decoded image (`images.decoded_size`)."""
    mask = decode_mask(mask_bytes, options, describe=describe)
    with tf.control_dependencies([_same_size(image_hw, mask, describe)]):
        # Ids >= num_classes are not counted: the ignore label (decode_mask refuses others).
        return tf.math.bincount(
            tf.cast(mask, tf.int32),
            minlength=options.num_classes,
            maxlength=options.num_classes,
            dtype=tf.int64,
        )


def decode_pair(
    image_bytes, mask_bytes, options: MaskOptions, *, seed=None, describe=()
) -> tuple[tf.Tensor, tf.Tensor]:
    """(float32 [H, W, channels] in [0, 1], int64 [H, W] mask) at `image_size`; with
    `seed` (shape [2]) one random crop and flip applied to both."""
    image_options = options.image
    image = images.decode_uint8(image_bytes, image_options.channels, describe=describe)
    mask = decode_mask(mask_bytes, options, describe=describe)
    with tf.control_dependencies([_same_size(tf.shape(image)[:2], mask, describe)]):
        mask = tf.expand_dims(mask, -1)
    if seed is not None:
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(image),
            bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
            seed=crop_seed,
            min_object_covered=0.0,
            aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(image_options.crop_min_area, 1.0),
            max_attempts=10,
        )
        image = tf.slice(image, begin, size)
        mask = tf.slice(mask, begin * [1, 1, 0], size * [1, 1, 0] + [0, 0, 1])
    image = resize_image(image, image_options)
    mask = tf.image.resize(mask, image_options.image_size, method="nearest")
    if seed is not None:
        flip = tf.random.stateless_uniform([], flip_seed) < 0.5
        image = tf.where(flip, tf.reverse(image, [1]), image)
        mask = tf.where(flip, tf.reverse(mask, [1]), mask)
    return image, mask[..., 0]


def resize_image(image, options: images.ImageOptions) -> tf.Tensor:
    """float32 [H, W, channels] in [0, 1] of a uint8 image: bilinear to `image_size`, as
    `decode_pair` resizes (no antialiasing, unlike image classification's `decode`)."""
    resized = tf.image.resize(image, options.image_size, method="bilinear") / 255.0
    return tf.clip_by_value(resized, 0.0, 1.0)


def decode_image(encoded, options: images.ImageOptions, *, describe=()):
    """(float32 [H, W, channels] in [0, 1], int32 [2] the image's own (height, width)) of
    encoded image bytes without a mask: `decode_pair`'s image without augmentation, for
    serving and batch prediction."""
    image = images.decode_uint8(encoded, options.channels, describe=describe)
    return resize_image(image, options), tf.shape(image)[:2]


def prediction_batches(records: tf.data.Dataset, options: MaskOptions, batch_size: int):
    """Batches of `{"file", "row", "name", "size", "features", "error"}` from `(file, row,
    encoded image, name)` records: each image decoded as `decode_image` does, with its
    own size (int32 [B, 2]) to resize its mask back to; one that cannot be decoded has
    zero features and size and the decoder's message as its "error" (data/unreadable.py)."""

    def decoded(file, index, encoded, name):
        image, size = decode_image(encoded, options.image)
        return {"features": image, "size": size}

    batches = unreadable.decode_or_flag(
        records,
        keep=lambda file, index, encoded, name: {"file": file, "row": index, "name": name},
        decode=decoded,
        batch_size=batch_size,
    )
    return batches.prefetch(tf.data.AUTOTUNE)
