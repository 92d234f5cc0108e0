"""Keras `Loss` classes: thin wrappers that store the config and call the functions.

Each class names its function; its arguments are the function's keyword-only
hyper-parameters with their defaults, read from the function's signature, so each is
written once, in the function. They subclass `tf.keras.losses.Loss`, so they are Keras
3 losses, or tf-keras losses when `TF_USE_LEGACY_KERAS=1`. Reductions:

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

A loss with an `ignore_class` argument leaves ignored examples uncounted by every
reduction: with "none" its per-example losses carry a Keras mask that
`compute_global_loss` reads.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import tensorflow as tf

from focal_dist.distribute.resolve import WholeBatchBackend
from focal_dist.losses import _validation
from focal_dist.losses.asymmetric import asymmetric_loss
from focal_dist.losses.binary import binary_focal_crossentropy
from focal_dist.losses.categorical import categorical_focal_crossentropy
from focal_dist.losses.logit_adjustment import (
    logit_adjusted_binary_crossentropy,
    logit_adjusted_crossentropy,
)
from focal_dist.losses.reduction import compute_global_loss
from focal_dist.losses.sparse_categorical import (
    ignored_example_mask,
    sparse_categorical_focal_crossentropy,
)

_keras = tf.keras  # Keras 3, or tf_keras under TF_USE_LEGACY_KERAS=1.
_register = _keras.utils.register_keras_serializable(package="focal_dist")

GLOBAL_MEAN = "global_mean"
DEFAULT_REDUCTION = "sum_over_batch_size"


def _plain(value):
    """Makes arrays and tensors JSON-friendly lists; dict keys become ints."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, tf.Tensor):
        return value.numpy().tolist()
    if isinstance(value, Mapping):
        return {int(k): float(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class FunctionLoss(_keras.losses.Loss):
    """A Loss that stores its function's keyword-only arguments and forwards each call.

    Subclass as `class MyLoss(FunctionLoss, function=my_loss)`: the class then takes
    `my_loss`'s keyword-only arguments (same names, same defaults), plus `reduction` and
    `name` (default: the function's name).
    """

    _function = None
    _defaults: ClassVar[dict] = {}

    def __init_subclass__(cls, *, function=None, **kwargs):
        super().__init_subclass__(**kwargs)
        if function is None:
            return
        parameters = [
            p
            for p in inspect.signature(function).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        cls._function = staticmethod(function)
        cls._defaults = {p.name: p.default for p in parameters}
        keyword = inspect.Parameter.KEYWORD_ONLY

        def __init__(self, **kwargs):
            FunctionLoss.__init__(self, **kwargs)

        # So that help() and inspect show the function's arguments, not **kwargs.
        __init__.__signature__ = inspect.Signature(
            [
                inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                *(p.replace(annotation=inspect.Parameter.empty) for p in parameters),
                inspect.Parameter("reduction", keyword, default=DEFAULT_REDUCTION),
                inspect.Parameter("name", keyword, default=function.__name__),
                inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
            ]
        )
        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        cls.__init__ = __init__

    def __init__(self, *, reduction=DEFAULT_REDUCTION, name=None, **kwargs):
        if self._function is None:
            raise TypeError("FunctionLoss is a base class: subclass it with function=...")
        loss_kwargs = {key: kwargs.pop(key, default) for key, default in self._defaults.items()}
        missing = [key for key, value in loss_kwargs.items() if value is inspect.Parameter.empty]
        if missing:
            raise TypeError(
                f"{type(self).__name__} needs {', '.join(f'{k}=' for k in missing)} (see "
                f"{self._function.__name__}); got none"
            )
        # Keras validates its own reductions; global_mean is ours and done in __call__.
        keras_reduction = "none" if reduction == GLOBAL_MEAN else reduction
        super().__init__(reduction=keras_reduction, name=name or self._function.__name__, **kwargs)
        self.reduction = reduction
        # Fail at construction, not at the first step (shapes are checked at the call).
        for key, value in loss_kwargs.items():
            _validation.check_argument(key, value)
        self._loss_kwargs = {key: _plain(value) for key, value in loss_kwargs.items()}

    @property
    def _ignore_class(self):
        return self._loss_kwargs.get("ignore_class")

    def __call__(self, y_true, y_pred, sample_weight=None):
        if self.reduction == GLOBAL_MEAN:
            return self._global_mean(y_true, y_pred, sample_weight)
        losses = super().__call__(y_true, y_pred, sample_weight=sample_weight)
        if self._ignore_class is not None and losses.shape.rank:
            # Keras drops the mask when it reduces (even with "none"); put it back so that
            # compute_global_loss leaves the ignored examples uncounted.
            losses._keras_mask = ignored_example_mask(y_true, self._ignore_class)
        return losses

    def _global_mean(self, y_true, y_pred, sample_weight):
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
        losses = type(self)._function(y_true, y_pred, **self._loss_kwargs)
        if self._ignore_class is not None:
            losses._keras_mask = ignored_example_mask(y_true, self._ignore_class)
        return losses

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


@_register
class BinaryFocalCrossentropy(FunctionLoss, function=binary_focal_crossentropy):
    """Binary / multi-label focal loss; see `binary_focal_crossentropy`."""


@_register
class CategoricalFocalCrossentropy(FunctionLoss, function=categorical_focal_crossentropy):
    """Categorical focal loss; see `categorical_focal_crossentropy`."""


@_register
class SparseCategoricalFocalCrossentropy(
    FunctionLoss, function=sparse_categorical_focal_crossentropy
):
    """Focal loss for integer labels; see `sparse_categorical_focal_crossentropy`.

    Under `model.fit` with MirroredStrategy, where replicas hold different numbers of
    valid pixels (`ignore_class`), use `reduction="global_mean"`: Keras's
    "sum_over_batch_size" divides each replica's mean by R instead.
    """


@_register
class AsymmetricLoss(FunctionLoss, function=asymmetric_loss):
    """Asymmetric loss for multi-label outputs; see `asymmetric_loss`."""


@_register
class LogitAdjustedCrossentropy(FunctionLoss, function=logit_adjusted_crossentropy):
    """Logit-adjusted cross-entropy for integer labels; see `logit_adjusted_crossentropy`."""


@_register
class LogitAdjustedBinaryCrossentropy(FunctionLoss, function=logit_adjusted_binary_crossentropy):
    """Logit-adjusted sigmoid cross-entropy; see `logit_adjusted_binary_crossentropy`."""
