"""Keras `Loss` classes: thin wrappers that store the config and call the functions.

They subclass `tf.keras.losses.Loss`, so they are Keras 3 losses, or tf-keras losses
when `TF_USE_LEGACY_KERAS=1`. Reductions:

* "sum_over_batch_size" (the default, as in Keras): the mean over this call's examples,
  Keras's own reduction; in `model.compile` it trains exactly like Keras's class with
  the same arguments, on one device and under MirroredStrategy when every replica
  counts the same number of examples.
* "global_mean": this replica's share of the mean over every counted element of the
  global step (`compute_global_loss`): the count of valid elements is all-reduced in
  the replica context. Inside `model.fit` under MirroredStrategy it keeps the
  single-device mean exact when replicas count different numbers of elements
  (`ignore_class` pixels, masks), where Keras divides each replica's own mean by R.
* "none": per-example losses, for `compute_global_loss` in a custom loop (and "sum").
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from focal_dist.distribute.resolve import WholeBatchBackend
from focal_dist.losses import focal
from focal_dist.losses.reduction import compute_global_loss

_keras = tf.keras  # Keras 3, or tf_keras under TF_USE_LEGACY_KERAS=1.

GLOBAL_MEAN = "global_mean"
DEFAULT_REDUCTION = "sum_over_batch_size"


def _plain(value):
    """Makes class_weight / alpha JSON-friendly: arrays become lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tf.Tensor):
        return value.numpy().tolist()
    if isinstance(value, Mapping):
        return {int(k): float(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class _FocalLoss(_keras.losses.Loss):
    """Stores the function's keyword arguments and forwards every call to it."""

    _function = None  # set by subclasses; a staticmethod-like reference

    def __init__(self, *, reduction=DEFAULT_REDUCTION, name=None, **kwargs):
        loss_kwargs = {key: kwargs.pop(key) for key in list(kwargs) if key in self._arguments}
        # Keras validates its own reductions; global_mean is ours and done in __call__.
        keras_reduction = "none" if reduction == GLOBAL_MEAN else reduction
        super().__init__(reduction=keras_reduction, name=name, **kwargs)
        self.reduction = reduction
        self._loss_kwargs = {key: _plain(value) for key, value in loss_kwargs.items()}
        # Fail at construction, not at the first step: the functions validate on entry.
        self._validate(self._loss_kwargs)

    _arguments: tuple[str, ...] = ()

    @staticmethod
    def _validate(kwargs):
        focal._validation.check_gamma(kwargs["gamma"])
        if "label_smoothing" in kwargs:
            focal._validation.check_unit_interval("label_smoothing", kwargs["label_smoothing"])

    def __call__(self, y_true, y_pred, sample_weight=None):
        if self.reduction != GLOBAL_MEAN:
            return super().__call__(y_true, y_pred, sample_weight=sample_weight)
        input_mask = getattr(y_pred, "_keras_mask", None)
        with tf.name_scope(self.name):
            losses = self.call(y_true, y_pred)
            mask = getattr(losses, "_keras_mask", None)
            if input_mask is not None:
                input_mask = tf.cast(input_mask, tf.bool)
                mask = input_mask if mask is None else tf.logical_and(mask, input_mask)
            # Outside a replica step (fit's symbolic build, or a call on the whole batch
            # under strategy.scope()) the data at hand is the whole step: no collective.
            backend = WholeBatchBackend() if tf.distribute.in_cross_replica_context() else None
            return compute_global_loss(losses, sample_weight, mask=mask, backend=backend)

    def call(self, y_true, y_pred):
        return type(self)._function(y_true, y_pred, **self._loss_kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(self._loss_kwargs)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # JSON turns {0: w} into {"0": w}.
        if isinstance(config.get("class_weight"), Mapping):
            config["class_weight"] = {int(k): v for k, v in config["class_weight"].items()}
        return cls(**config)


@_keras.utils.register_keras_serializable(package="focal_dist")
class BinaryFocalCrossentropy(_FocalLoss):
    """Binary / multi-label focal loss; see `binary_focal_crossentropy`.

    `reduction`: "sum_over_batch_size" (default, Keras's mean over the batch),
    "global_mean" (exact global mean under tf.distribute), "sum" or "none" (per example).
    """

    _function = staticmethod(focal.binary_focal_crossentropy)
    _arguments = (
        "gamma",
        "alpha",
        "apply_class_balancing",
        "from_logits",
        "label_smoothing",
        "axis",
        "class_weight",
    )

    def __init__(
        self,
        gamma=2.0,
        alpha=0.25,
        apply_class_balancing=False,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        class_weight=None,
        reduction=DEFAULT_REDUCTION,
        name="binary_focal_crossentropy",
        **kwargs,
    ):
        focal._validation.check_unit_interval("alpha", alpha)
        focal._validation.binary_class_weight(class_weight, None)
        super().__init__(
            gamma=gamma,
            alpha=alpha,
            apply_class_balancing=apply_class_balancing,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
            class_weight=class_weight,
            reduction=reduction,
            name=name,
            **kwargs,
        )


@_keras.utils.register_keras_serializable(package="focal_dist")
class CategoricalFocalCrossentropy(_FocalLoss):
    """Categorical focal loss; see `categorical_focal_crossentropy`.

    `reduction` as in `BinaryFocalCrossentropy`.
    """

    _function = staticmethod(focal.categorical_focal_crossentropy)
    _arguments = ("gamma", "alpha", "from_logits", "label_smoothing", "axis", "class_weight")

    def __init__(
        self,
        gamma=2.0,
        alpha=0.25,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        class_weight=None,
        reduction=DEFAULT_REDUCTION,
        name="categorical_focal_crossentropy",
        **kwargs,
    ):
        focal._validation.check_alpha_vector(alpha, None)
        super().__init__(
            gamma=gamma,
            alpha=alpha,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
            class_weight=class_weight,
            reduction=reduction,
            name=name,
            **kwargs,
        )


@_keras.utils.register_keras_serializable(package="focal_dist")
class SparseCategoricalFocalCrossentropy(_FocalLoss):
    """Focal loss for integer labels; see `sparse_categorical_focal_crossentropy`.

    With `ignore_class`, ignored examples (pixels) are left uncounted by every
    reduction: with "none" the per-example losses carry a Keras mask that
    `compute_global_loss` reads. Under `model.fit` with MirroredStrategy, where replicas
    hold different numbers of valid pixels, use `reduction="global_mean"`: Keras's
    "sum_over_batch_size" divides each replica's mean by R instead.
    """

    _function = staticmethod(focal.sparse_categorical_focal_crossentropy)
    _arguments = ("gamma", "alpha", "from_logits", "axis", "class_weight", "ignore_class")

    def __init__(
        self,
        gamma=2.0,
        alpha=0.25,
        from_logits=False,
        axis=-1,
        class_weight=None,
        ignore_class=None,
        reduction=DEFAULT_REDUCTION,
        name="sparse_categorical_focal_crossentropy",
        **kwargs,
    ):
        focal._validation.check_alpha_vector(alpha, None)
        super().__init__(
            gamma=gamma,
            alpha=alpha,
            from_logits=from_logits,
            axis=axis,
            class_weight=class_weight,
            ignore_class=ignore_class,
            reduction=reduction,
            name=name,
            **kwargs,
        )

    def __call__(self, y_true, y_pred, sample_weight=None):
        losses = super().__call__(y_true, y_pred, sample_weight=sample_weight)
        ignore_class = self._loss_kwargs["ignore_class"]
        if self.reduction == GLOBAL_MEAN:
            return losses
        if ignore_class is not None and losses.shape.rank:
            # Keras drops the mask when it reduces (even with "none"); put it back so that
            # compute_global_loss leaves the ignored examples uncounted.
            losses._keras_mask = focal.ignored_example_mask(y_true, ignore_class)
        return losses

    def call(self, y_true, y_pred):
        losses = super().call(y_true, y_pred)
        ignore_class = self._loss_kwargs["ignore_class"]
        if ignore_class is not None:
            losses._keras_mask = focal.ignored_example_mask(y_true, ignore_class)
        return losses
