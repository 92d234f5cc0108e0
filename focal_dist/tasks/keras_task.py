"""A user's own Keras model and data as a Task, without writing a Task class."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from focal_dist.data import pipeline
from focal_dist.data.label_modes import LABEL_MODES
from focal_dist.distribute import InputInfo
from focal_dist.tasks.base import Evaluation, LossTerm, Task


class KerasTask(Task):
    """Trains `model_fn()` on `train_examples()` with `per_example_loss` or `loss_terms`.

    Global step k holds the same examples under every distribution: each input
    pipeline reads the whole (seeded, shuffled) example stream, batches it by the
    global batch size and keeps its slice (`data.pipeline.split_global_batches`). For
    data too large to read on every worker, write a `Task` whose `train_dataset`
    shards files by `info.pipeline_id`.

    Args:
      model_fn: () -> keras.Model from a batch of features to logits [B, num_outputs];
        seed its initialisers so every worker builds the same model.
      train_examples: () -> an unbatched `tf.data.Dataset` of (features, label).
      per_example_loss: (labels, logits) -> [B] losses, e.g.
        `functools.partial(focal_dist.losses.binary_focal_crossentropy, gamma=2.0,
        from_logits=True)`.
      loss_terms: instead of `per_example_loss`, the loss as `LossTerm`s, e.g. a
        per-pixel focal term whose mask is the valid pixels ([B, H, W]) and a per-image
        Dice term: each is divided by its own global count.
      evaluation: the eval metrics (`focal_dist.tasks.Evaluation`); default: bucketed
        classification metrics of [B, C] logits (dense logits need their own, e.g.
        `tasks.segmentation_metrics.SegmentationEvaluation`).
      num_outputs: the number of logits C.
      label_mode: "binary" / "multi_label" (0/1 labels [B, C], sigmoid metrics) or
        "sparse" (class ids [B], softmax one-vs-rest metrics).
      eval_examples: () -> an unbatched, finite dataset of (features, label), or None.
      calibration_examples: the same for a held-out calibration split (calibration and
        the decision threshold are fitted on it after training), or None.
      shuffle_buffer: examples in the shuffle buffer (0: no shuffle).
    """

    def __init__(
        self,
        *,
        model_fn: Callable,
        train_examples: Callable[[], tf.data.Dataset],
        per_example_loss: Callable | None = None,
        num_outputs: int,
        label_mode: str = "binary",
        eval_examples: Callable[[], tf.data.Dataset] | None = None,
        calibration_examples: Callable[[], tf.data.Dataset] | None = None,
        shuffle_buffer: int = 10_000,
        loss_terms: Sequence[LossTerm] | None = None,
        evaluation: Evaluation | None = None,
    ):
        if label_mode not in LABEL_MODES:
            raise ValueError(f"label_mode must be one of {LABEL_MODES}; got {label_mode!r}")
        if not isinstance(num_outputs, int) or num_outputs < 1:
            raise ValueError(f"num_outputs must be a positive int; got {num_outputs!r}")
        if (per_example_loss is None) == (loss_terms is None):
            raise TypeError("KerasTask takes one of per_example_loss= and loss_terms=")
        for name, value in (
            ("model_fn", model_fn),
            ("train_examples", train_examples),
            *((("per_example_loss", per_example_loss),) if loss_terms is None else ()),
        ):
            if not callable(value):
                raise TypeError(f"{name} must be callable; got {value!r}")
        self.num_outputs = num_outputs
        self.label_mode = label_mode
        self._model_fn = model_fn
        self._train_examples = train_examples
        self._held_out = {"eval": eval_examples, "calibration": calibration_examples}
        self._loss = per_example_loss
        self._loss_terms = tuple(loss_terms) if loss_terms is not None else None
        self._evaluation = evaluation
        self._shuffle_buffer = shuffle_buffer

    def build_model(self):
        return self._model_fn()

    def train_dataset(self, info: InputInfo) -> tf.data.Dataset:
        return pipeline.split_global_batches(
            self._train_examples(),
            info,
            global_batch_size=info.global_batch_size,
            shuffle_buffer=self._shuffle_buffer,
            seed=info.seed,
            skip_global_batches=info.skip_global_batches,
        )

    def _split(self, split: str, info: InputInfo) -> tf.data.Dataset | None:
        examples = self._held_out[split]
        if examples is None:
            return None
        return pipeline.split_global_batches(
            examples(), info, global_batch_size=info.global_batch_size, repeat=False
        )

    def eval_dataset(self, info: InputInfo) -> tf.data.Dataset | None:
        return self._split("eval", info)

    def calibration_dataset(self, info: InputInfo) -> tf.data.Dataset | None:
        return self._split("calibration", info)

    def per_example_loss(self, labels, logits):
        return self._loss(labels, logits)

    def loss_terms(self) -> tuple[LossTerm, ...]:
        return self._loss_terms if self._loss_terms is not None else super().loss_terms()

    def evaluation(self) -> Evaluation:
        return self._evaluation if self._evaluation is not None else super().evaluation()

    def probabilities_and_targets(self, labels, logits):
        if self.label_mode == "sparse":
            labels = tf.reshape(labels, [-1])
            return tf.nn.softmax(logits), tf.one_hot(tf.cast(labels, tf.int32), self.num_outputs)
        return tf.sigmoid(logits), tf.reshape(tf.cast(labels, tf.float32), tf.shape(logits))
