"""A SavedModel for TF Serving: the model, its calibration and its threshold in one graph.

Signatures (inputs -> outputs; every output float32 unless said otherwise):

    serving_default   features [None, F] (tabular) or [None, H, W, C] (images, floats
                      in [0, 1] as the data source decodes them)
                      -> probabilities [None, K]  calibrated, prior shift included
                         decisions     [None, K] int64 0/1 (probability >= threshold),
                                       or [None] int64 class id (argmax; multi-class)
                         logits        [None, K]  the model's own, uncalibrated
    examples          examples: serialized tf.train.Example [None] string (tabular
                      data; see `ExampleSpec`) -> the same outputs
    image_bytes       image_bytes: encoded JPEG/PNG/GIF/BMP [None] string (image data),
                      decoded and resized as evaluation does (`data.images.decode`)
                      -> the same outputs

Non-finite features fail the request (InvalidArgument) rather than return NaN.
The model is never run on an empty batch (oneDNN's Conv2D returns a wrong shape on
one): an empty request gets empty outputs.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import tensorflow as tf

from focal_dist import atomic_files
from focal_dist.serving.calibration import Calibration
from focal_dist.serving.example_spec import ExampleSpec
from focal_dist.workdir import DEPLOY_JSON

SIGNATURES = ("serving_default", "examples", "image_bytes")


def feature_spec(features_spec) -> tf.TensorSpec:
    """float32 [None, ...] of a tf.TensorSpec or of one example's shape."""
    if isinstance(features_spec, tf.TensorSpec):
        return tf.TensorSpec([None, *features_spec.shape[1:]], tf.float32)
    shape = tuple(features_spec)
    if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(
            "features_spec must be a tf.TensorSpec [None, ...] or one example's shape "
            f"((F,) or (H, W, C)); got {features_spec!r}"
        )
    return tf.TensorSpec([None, *shape], tf.float32)


def _check_decisions(calibration: Calibration, thresholds):
    if calibration.label_mode == "sparse":
        if thresholds is not None:
            raise ValueError(
                f"multi-class decisions are the argmax; thresholds must be None, got {thresholds!r}"
            )
        return None
    values = None if thresholds is None else np.asarray(thresholds, np.float64).ravel()
    if (
        values is None
        or values.shape != (calibration.num_outputs,)
        or not np.all((values >= 0) & (values <= 1))
    ):
        raise ValueError(
            f"thresholds must be {calibration.num_outputs} value(s) in [0, 1] (one per "
            f"output, e.g. Decision.thresholds); got {thresholds!r}"
        )
    return values


def export_saved_model(
    model,
    *,
    calibration: Calibration,
    thresholds,
    directory: str,
    features_spec,
    example_spec: ExampleSpec | None = None,
    image_options=None,
) -> dict:
    """Writes `directory` (a SavedModel), replacing an earlier one atomically.

    Args:
      model: a built Keras 3 model from features to logits [None, K].
      calibration: its `Calibration` (`Calibration.identity` for none).
      thresholds: one per output in [0, 1] (binary, multi_label), None for sparse.
      directory: the SavedModel's directory (TF Serving: `<base>/<version>`).
      features_spec: the model's input, a tf.TensorSpec or one example's shape.
      example_spec: tabular data: adds the `examples` signature.
      image_options: image data (`focal_dist.data.images.ImageOptions`): adds `image_bytes`.

    Returns:
      {signature: {"inputs": {name: description}, "outputs": [...]}} for deploy.json.
    """
    import keras

    spec = feature_spec(features_spec)
    values = _check_decisions(calibration, thresholds)
    if example_spec is not None and image_options is not None:
        raise ValueError("pass example_spec (tabular data) or image_options (images), not both")
    if example_spec is not None and (spec.shape.rank != 2 or spec.shape[1] != example_spec.width):
        raise ValueError(
            f"example_spec gives {example_spec.width} features; the model takes {spec.shape}"
        )
    width = calibration.num_outputs
    probe = model(tf.zeros([1, *spec.shape[1:]]), training=False)
    if tuple(probe.shape) != (1, width):
        raise ValueError(
            f"the model's logits have shape {tuple(probe.shape)} per example batch of 1; "
            f"the calibration has {width} output(s)"
        )

    def outputs(features):
        logits = tf.reshape(guarded_logits(model, features, [width]), [-1, width])
        probabilities = calibration.apply_tf(logits)
        if values is None:
            decisions = tf.argmax(probabilities, axis=1)
        else:
            decisions = tf.cast(probabilities >= tf.constant(values, tf.float32), tf.int64)
        return {"probabilities": probabilities, "decisions": decisions, "logits": logits}

    archive = keras.export.ExportArchive()
    archive.track(model)
    described = {"serving_default": {"features": f"float32 {spec.shape.as_list()}"}}

    def serving_default(features):
        return outputs(features)

    archive.add_endpoint("serving_default", serving_default, input_signature=[spec])
    if example_spec is not None:

        def examples(examples):
            return outputs(example_spec.parse(examples))

        strings = tf.TensorSpec([None], tf.string)
        archive.add_endpoint("examples", examples, input_signature=[strings])
        described["examples"] = {"examples": {"tf.train.Example": example_spec.describe()}}
    if image_options is not None:
        from focal_dist.data import images

        add_image_bytes(
            archive,
            described,
            lambda encoded: images.decode(encoded, image_options, describe=("image_bytes",)),
            tf.TensorSpec(image_options.input_shape, tf.float32),
            outputs,
        )
    write_archive(archive, directory)
    names = ["probabilities", "decisions", "logits"]
    return {name: {"inputs": inputs, "outputs": names} for name, inputs in described.items()}


def guarded_logits(model, features, logits_shape) -> tf.Tensor:
    """float32 logits [B, *logits_shape] of finite `features` (InvalidArgument otherwise);
    an empty batch never reaches the model (oneDNN's Conv2D fails on one)."""
    features = tf.debugging.check_numerics(features, "features must be finite")
    return tf.cond(
        tf.shape(features)[0] > 0,
        lambda: tf.cast(model(features, training=False), tf.float32),
        lambda: tf.zeros([0, *logits_shape]),
    )


def add_image_bytes(archive, described: dict, decode, image: tf.TensorSpec, outputs) -> None:
    """The `image_bytes` signature: a [None] string batch of encoded images, each decoded
    by `decode` to `image` (as evaluation decodes them), then `outputs` of the batch."""

    def image_bytes(image_bytes):
        decoded = tf.map_fn(decode, image_bytes, fn_output_signature=image)
        return outputs(decoded)

    archive.add_endpoint(
        "image_bytes", image_bytes, input_signature=[tf.TensorSpec([None], tf.string)]
    )
    described["image_bytes"] = {"image_bytes": "string [None]: JPEG, PNG, GIF or BMP bytes"}


class ExportWriteError(OSError):
    """An export could not be written (a full disk); its half-written copy is removed."""


def write_archive(archive, directory: str) -> None:
    """Writes a keras.export.ExportArchive to `directory`, replacing an earlier one in
    one step (atomic_files.replace_directory)."""
    partial = f"{os.path.normpath(directory)}.partial"
    if os.path.isdir(partial):
        shutil.rmtree(partial)  # an earlier export killed half-way
    os.makedirs(os.path.dirname(partial) or ".", exist_ok=True)
    with atomic_files.no_space_as(ExportWriteError, directory, partial):
        archive.write_out(partial, verbose=False)
    atomic_files.replace_directory(partial, directory)


def write_deploy_json(
    directory: str,
    *,
    calibration: Calibration,
    decision=None,
    class_names=None,
    config=None,
    signatures: dict | None = None,
    saved_model: str = "saved_model",
) -> str:
    """Writes `<directory>/deploy.json` atomically: what a deployment needs to know.

    `decision` is a `threshold.Decision` (binary, multi_label) or None (argmax);
    `class_names` one per output, or a binary output's two (label 0's, then label 1's);
    `config` a ConfigDict or a dict; `signatures` what `export_saved_model` returned.
    """
    if calibration.label_mode != "sparse" and decision is None:
        raise ValueError(f"{calibration.label_mode} outputs need a decision (thresholds)")
    # One name per output; a binary output's two classes (label 0, then label 1) by name.
    expected = 2 if calibration.label_mode == "binary" else calibration.num_outputs
    if class_names is not None and len(class_names) != expected:
        raise ValueError(
            f"class_names has {len(class_names)} names for {calibration.num_outputs} outputs "
            f"({calibration.label_mode}); expected {expected}"
        )
    if config is not None and hasattr(config, "to_json"):
        config = json.loads(config.to_json())
    rule = {"rule": "argmax"} if decision is None else decision.to_dict()
    document = {
        "label_mode": calibration.label_mode,
        "num_outputs": calibration.num_outputs,
        "class_names": None if class_names is None else list(class_names),
        "calibration": {"formula": calibration.formula, **calibration.to_dict()},
        "priors": {
            "calibration": calibration.to_dict()["calibration_prior"],
            "deployment": calibration.to_dict()["deploy_prior"],
        },
        "decision": rule,
        "saved_model": {"directory": saved_model, "signatures": signatures},
        "config": config,
    }
    os.makedirs(directory, exist_ok=True)
    return atomic_files.write_json(os.path.join(directory, DEPLOY_JSON), document)
