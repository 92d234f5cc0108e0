"""The Task seam: what a user implements to train their own model and data.

A task is a single-replica view of the work, as TF Model Garden's `base_task.Task` is:
it builds the model, this input pipeline's datasets and the per-example loss; it never
knows how many replicas, workers or which backend run it. The trainer (the controller
and the step math) does the rest: distribution, the global mean, checkpoints,
TensorBoard, summary.json and export.

The contract, member by member:

- `num_outputs` (int): the number of logits, C (1 for binary).
- `build_model()` -> a `keras.Model` mapping one batch of features to logits [B, C]. It
  is called once, inside the backend's scope; its initial weights must not depend on
  the worker (seed the initialisers), and it is what gets checkpointed and exported.
- `train_dataset(info)` -> this input pipeline's training batches: a repeated
  `tf.data.Dataset` of `(features, labels)` batches of `info.per_replica_batch_size`
  rows (a short last batch, even an empty one, is fine: the step pads and masks it),
  resuming `info.skip_global_batches` global batches into the stream.
- `eval_dataset(info)` -> this pipeline's evaluation batches, finite, the same number
  of batches on every pipeline; or None for no evaluation.
- `per_example_loss(labels, logits)` -> l_i, shape [B], float32, class weights
  applied. The trainer takes the global mean (1 / G) sum_i l_i over all replicas.
- `probabilities_and_targets(labels, logits)` -> ([B, C] probabilities, [B, C] 0/1
  targets) for the exact bucketed metrics (PR-AUC, ROC-AUC, P/R/F1).
- `prepare(backend)`: called once before training, on every worker, with the backend;
  the place for collective work such as counting a distributed label histogram to set
  class weights. Default: nothing.
- `report()` -> a `TaskReport` (a label table for TensorBoard) or None. Default: None.

`InputInfo` (focal_dist.distribute) carries everything a dataset needs: this pipeline's
id and the number of pipelines (shard by them), `per_replica_batch_size`,
`replicas_per_pipeline`, `global_batch_size`, `seed` and `skip_global_batches`.
"""

from __future__ import annotations

import abc
import dataclasses

import tensorflow as tf

from focal_dist.distribute import Backend, InputInfo


@dataclasses.dataclass(frozen=True)
class TaskReport:
    """What the task shows in TensorBoard once per run: a Markdown table."""

    name: str
    header: list[str]
    rows: list[list]


class Task(abc.ABC):
    """What is trained (see the module docstring for each member's contract)."""

    num_outputs: int

    @abc.abstractmethod
    def build_model(self):
        """A keras.Model from features to logits [B, num_outputs]."""

    @abc.abstractmethod
    def train_dataset(self, info: InputInfo) -> tf.data.Dataset:
        """This pipeline's repeated training batches of `info.per_replica_batch_size`."""

    def eval_dataset(self, info: InputInfo) -> tf.data.Dataset | None:
        """This pipeline's finite evaluation batches, or None (no evaluation)."""
        del info
        return None

    @abc.abstractmethod
    def per_example_loss(self, labels, logits) -> tf.Tensor:
        """l_i, shape [B], class weights applied."""

    def probabilities_and_targets(self, labels, logits):
        """([B, C] probabilities, [B, C] 0/1 targets); sigmoid of the logits by default."""
        return tf.sigmoid(logits), tf.cast(labels, tf.float32)

    def prepare(self, backend: Backend) -> None:
        """Runs once before training on every worker (e.g. a distributed label count)."""

    def report(self) -> TaskReport | None:
        """A table written to TensorBoard once per run, or None."""
        return None
