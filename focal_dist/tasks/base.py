"""The Task seam: what a user implements to train their own model and data.

A task is a single-replica view of the work, as TF Model Garden's `base_task.Task` is:
it builds the model, this input pipeline's datasets and its loss terms; it never knows
how many replicas, workers or which backend run it. The trainer (the step math and the
controller) does the rest: distribution, the global mean, checkpoints, TensorBoard,
summary.json and export.

The contract, member by member:

- `num_outputs` (int): the number of logits per element, C (1 for binary).
- `build_model()` -> a `keras.Model` mapping one batch of features to logits ([B, C], or
  [B, H, W, C] for dense prediction). It is called once, inside the backend's scope; its
  initial weights must not depend on the worker (seed the initialisers), and it is what
  gets checkpointed and exported.
- `train_dataset(info)` -> this input pipeline's training batches: a repeated
  `tf.data.Dataset` of `(features, labels)` batches of `info.per_replica_batch_size`
  rows (a short last batch, even an empty one, is fine: the step pads and masks it),
  resuming `info.skip_global_batches` global batches into the stream.
- `eval_dataset(info)` -> this pipeline's evaluation batches, finite, the same number
  of batches on every pipeline; or None for no evaluation.
- `calibration_dataset(info)` -> the same for a held-out calibration split that training
  never sees (calibration and the decision threshold are fitted on it), or None.
- `label_mode` ("binary", "multi_label", "sparse"; None: no calibration or decision) and
  `serving_inputs()` (how a served request may carry an example; `Source.serving_inputs`)
  describe what is exported after training.
- `loss_terms()` -> the `LossTerm`s whose sum is the loss. Each term has its own global
  denominator (valid examples, valid pixels, images, positives), counted from the
  labels alone. Default: one per-example term from `per_example_loss`.
- `per_example_loss(labels, logits)` -> l_i, shape [B], float32, class weights applied
  (used by the default `loss_terms`).
- `evaluation()` -> an `Evaluation`: the exact metrics of the eval set. Default: bucketed
  PR-AUC, ROC-AUC and P/R/F1 from `probabilities_and_targets`.
- `probabilities_and_targets(labels, logits)` -> ([B, C] probabilities, [B, C] 0/1
  targets) for the default evaluation.
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
from collections.abc import Callable

import tensorflow as tf

from focal_dist.distribute import Backend, InputInfo
from focal_dist.tasks.bucket_metrics import BucketEvaluation
from focal_dist.tasks.evaluation import Evaluation


@dataclasses.dataclass(frozen=True)
class TaskReport:
    """What the task shows in TensorBoard once per run: a Markdown table."""

    name: str
    header: list[str]
    rows: list[list]


def bad_files_report(found) -> TaskReport:
    """TensorBoard's table of the image files `data.bad_files = "skip"` left out."""
    header = [f"image file left out ({found.count} in all)", "why it cannot be decoded"]
    return TaskReport("data/skipped_files", header, found.table())


@dataclasses.dataclass(frozen=True)
class LossTerm:
    r"""One term of a task's loss, with its own global denominator.

        L_t = weight * (1 / max(G_t, floor)) * sum_e m_e l_e,    G_t = sum_r n_r

    over every element e of the global step (docs/design.md, "The global mean").

    Attributes:
      name: the term's name in logs and summaries ("loss", "focal", "dice").
      per_element: (labels, logits) -> l, float32, one value per element: [B] for a
        per-example term, [B, H, W] per pixel, [B, A] per anchor; weights applied.
      mask: labels -> m (0/1, l's shape): which elements count (an ignored pixel is 0).
        It must follow from the labels alone: the counts travel before the forward pass.
        None: every element of a per-example term ([B]). The step masks padding rows
        itself.
      normalizer: (labels, mask) -> this replica's count n_r (a scalar); None: the sum
        of the mask (the valid elements). E.g. a RetinaNet head's positive anchors.
      floor: the least global denominator (RetinaNet: 1); applied to G_t, never to n_r.
      weight: the term's weight in the sum.
    """

    name: str
    per_element: Callable
    mask: Callable | None = None
    normalizer: Callable | None = None
    floor: float = 0.0
    weight: float = 1.0


class Task(abc.ABC):
    """What is trained (see the module docstring for each member's contract)."""

    num_outputs: int
    label_mode: str | None = None
    class_names: list[str] | None = None
    # The `config.data` fields the task's data reads (None: all); hparams show only these.
    data_fields: tuple[str, ...] | None = None

    @abc.abstractmethod
    def build_model(self):
        """A keras.Model from features to logits."""

    @abc.abstractmethod
    def train_dataset(self, info: InputInfo) -> tf.data.Dataset:
        """This pipeline's repeated training batches of `info.per_replica_batch_size`."""

    def eval_dataset(self, info: InputInfo) -> tf.data.Dataset | None:
        """This pipeline's finite evaluation batches, or None (no evaluation)."""
        del info
        return None

    def calibration_dataset(self, info: InputInfo) -> tf.data.Dataset | None:
        """This pipeline's finite calibration batches, or None (export uncalibrated)."""
        del info
        return None

    def serving_inputs(self) -> dict:
        """Signatures beside the features tensor (`Source.serving_inputs`); default none."""
        return {}

    def loss_terms(self) -> tuple[LossTerm, ...]:
        """The loss as a sum of terms; default: the mean of `per_example_loss`."""
        return (LossTerm("loss", self.per_example_loss),)

    def per_example_loss(self, labels, logits) -> tf.Tensor:
        """l_i, shape [B], class weights applied (for the default `loss_terms`)."""
        raise NotImplementedError(
            f"{type(self).__name__} must define per_example_loss(labels, logits) or "
            "override loss_terms()"
        )

    def evaluation(self) -> Evaluation:
        """Bucketed classification metrics from `probabilities_and_targets`."""
        return BucketEvaluation(self.num_outputs, self.probabilities_and_targets)

    def probabilities_and_targets(self, labels, logits):
        """([B, C] probabilities, [B, C] 0/1 targets); sigmoid of the logits by default."""
        return tf.sigmoid(logits), tf.cast(labels, tf.float32)

    def prepare(self, backend: Backend) -> None:
        """Runs once before training on every worker (e.g. a distributed label count)."""

    def report(self) -> TaskReport | list[TaskReport] | None:
        """Tables written to TensorBoard once per run, or None."""
        return None

    def summary_sections(self) -> dict:
        """Sections the task adds to summary.json (e.g. the rows its data skipped)."""
        return {}
