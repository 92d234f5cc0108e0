"""A SavedModel of per-pixel classes for TF Serving (task.name = "segmentation").

Signatures (inputs -> outputs), K classes, the model's input H x W x C:

    serving_default   features [None, H, W, C] float32 in [0, 1], as the data source
                      decodes images
                      -> probabilities [None, H, W, K] float32  softmax over the classes
                         decisions     [None, H, W] int64       argmax: the class id
                         logits        [None, H, W, K] float32  the model's own
    image_bytes       image_bytes: encoded JPEG/PNG/GIF/BMP [None] string, decoded and
                      resized as segmentation evaluation does (`data.masks.decode_image`:
                      bilinear, no augmentation) -> the same outputs, at H x W

Per-pixel probabilities are not calibrated: the calibration is the identity, and
deploy.json says so. A mask at an image's own size is `decisions` resized back by
nearest neighbour (batch prediction does it: serving/mask_writer.py). Non-finite
features fail the request; an empty request gets empty outputs.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from focal_dist import atomic_files
from focal_dist.serving.export import (
    add_image_bytes,
    feature_spec,
    guarded_logits,
    write_archive,
)
from focal_dist.workdir import DEPLOY_JSON

LABEL_MODE = "per_pixel"  # deploy.json's label_mode: a class id per pixel
OUTPUTS = ["probabilities", "decisions", "logits"]
UNCALIBRATED = "probabilities = softmax(logits) over the classes of each pixel (identity)"


def export_mask_model(model, *, directory: str, num_classes: int, mask_options=None) -> dict:
    """Writes `directory` (a SavedModel), replacing an earlier one atomically.

    Args:
      model: a built Keras 3 model from images [None, H, W, C] to logits [None, H, W, K].
      directory: the SavedModel's directory (TF Serving: `<base>/<version>`).
      num_classes: K, background included.
      mask_options: `focal_dist.data.masks.MaskOptions` of the training data: adds the
        `image_bytes` signature; None for the features tensor only.

    Returns:
      {signature: {"inputs": {name: description}, "outputs": [...]}} for deploy.json.
    """
    import keras

    spec = feature_spec(tuple(model.input_shape[1:]))
    if spec.shape.rank != 4:
        raise ValueError(f"model input must be images [None, H, W, C]; got {spec.shape}")
    height, width = spec.shape[1:3]
    probe = model(tf.zeros([1, *spec.shape[1:]]), training=False)
    if tuple(probe.shape) != (1, height, width, num_classes):
        raise ValueError(
            f"the model's logits have shape {tuple(probe.shape)} for a batch of 1; per-pixel "
            f"export needs (1, {height}, {width}, {num_classes}) (num_classes={num_classes})"
        )
    if mask_options is not None and mask_options.image.input_shape != tuple(spec.shape[1:]):
        raise ValueError(
            f"mask_options decode images to {mask_options.image.input_shape}; the model "
            f"takes {tuple(spec.shape[1:])}"
        )

    def outputs(features):
        logits = guarded_logits(model, features, [height, width, num_classes])
        return {
            "probabilities": tf.nn.softmax(logits, axis=-1),
            "decisions": tf.argmax(logits, axis=-1),
            "logits": logits,
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", outputs, input_signature=[spec])
    described = {"serving_default": {"features": f"float32 {spec.shape.as_list()}"}}
    if mask_options is not None:
        from focal_dist.data import masks

        add_image_bytes(
            archive,
            described,
            lambda encoded: masks.decode_image(
                encoded, mask_options.image, describe=("image_bytes",)
            )[0],
            tf.TensorSpec(mask_options.image.input_shape, tf.float32),
            outputs,
        )
    write_archive(archive, directory)
    return {name: {"inputs": inputs, "outputs": OUTPUTS} for name, inputs in described.items()}


def write_mask_deploy_json(
    directory: str,
    *,
    num_classes: int,
    input_shape,
    ignore_label: int | None = None,
    class_names=None,
    config=None,
    signatures: dict | None = None,
    saved_model: str = "saved_model",
) -> str:
    """Writes `<directory>/deploy.json` atomically for a per-pixel export: label_mode
    "per_pixel", the classes, the ignore label (masks' value counted nowhere; never
    predicted), the image size the model takes, and that nothing is calibrated."""
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
    if config is not None and hasattr(config, "to_json"):
        config = json.loads(config.to_json())
    height, width, channels = (int(d) for d in input_shape)
    document = {
        "label_mode": LABEL_MODE,
        "num_outputs": int(num_classes),
        "class_names": None if class_names is None else list(class_names),
        "ignore_label": ignore_label,
        "image_size": [height, width],
        "channels": channels,
        "calibration": {"method": "none", "formula": UNCALIBRATED},
        "decision": {"rule": "argmax per pixel"},
        "saved_model": {"directory": saved_model, "signatures": signatures},
        "config": config,
    }
    os.makedirs(directory, exist_ok=True)
    return atomic_files.write_json(os.path.join(directory, DEPLOY_JSON), document)
