"""TensorBoard summaries, written by the chief only.

Non-chief workers get a writer that writes nothing, so code that logs never asks who
it runs on. One run is one continuous record across restarts: a process that resumes
from the checkpoint of step S first writes a SessionLog START event at step S + 1, which
tells TensorBoard to drop what a killed process wrote for steps > S (the summaries of
steps <= S are flushed before ckpt-S is saved, see `open`). PR curves use the pr_curve
plugin's metadata with `tf.summary.write` (its own summary ops are TF1 only); bucketed
probability histograms use the histogram plugin's [k, 3] (left, right, count) layout.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import event_pb2
from tensorboard.plugins.histogram import metadata as histogram_metadata
from tensorboard.plugins.hparams import api as hparams_api
from tensorboard.plugins.pr_curve import metadata as pr_curve_metadata

from focal_dist.training import metrics as metrics_lib


class SummaryWriter:
    """Scalars, histograms, PR curves, text and hparams under `logdir` (chief only)."""

    def __init__(self, logdir: str, enabled: bool):
        self.logdir = logdir
        self.enabled = enabled
        self._writer = None

    def open(self, resumed_step: int = 0) -> None:
        """Creates the event file, starting with a SessionLog START event.

        TensorBoard's loader (purge_orphaned_data, its default) takes the first START
        of a log directory as the run's start and each later one, at step T, as a
        restart: it drops every event with step >= T seen before. A process that resumes
        at step S marks S + 1 (steps <= S are the checkpoint's); one that starts from
        scratch marks 0, dropping whatever a process killed before its first checkpoint
        wrote. (TensorBoard's Rust data server instead drops a tag's points at and after
        a step that is written again; both views agree.)
        """
        if not self.enabled:
            return
        self._writer = tf.summary.create_file_writer(self.logdir)
        start = event_pb2.Event(
            wall_time=time.time(),
            step=resumed_step + 1 if resumed_step > 0 else 0,
            session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START),
        )
        # tf.summary has no API for SessionLog events; ImportEvent writes a raw Event
        # into the same writer, so it precedes this process's summaries in its file.
        tf.raw_ops.ImportEvent(writer=self._writer._resource, event=start.SerializeToString())
        self._writer.flush()

    def scalars(self, values: dict[str, float], step: int, prefix: str = "") -> None:
        if self._writer is None:
            return
        with self._writer.as_default(step=step):
            for name, value in values.items():
                if value is not None and np.isfinite(value):
                    tf.summary.scalar(prefix + name, float(value))

    def text(self, name: str, markdown: str, step: int = 0) -> None:
        if self._writer is not None:
            with self._writer.as_default(step=step):
                tf.summary.text(name, markdown)

    def hparams(self, flat_config: dict) -> None:
        if self._writer is not None:
            with self._writer.as_default():
                hparams_api.hparams(flat_config)

    def evaluation(self, positives: np.ndarray, negatives: np.ndarray, step: int, tag: str):
        """Histograms of predicted probability for positives and negatives, PR curves."""
        if self._writer is None:
            return
        with self._writer.as_default(step=step):
            for c in range(positives.shape[0]):
                suffix = "" if positives.shape[0] == 1 else f"/class_{c}"
                for name, counts in (("positives", positives[c]), ("negatives", negatives[c])):
                    tf.summary.write(
                        f"{tag}/probability_{name}{suffix}",
                        _histogram_tensor(counts),
                        metadata=histogram_metadata.create_summary_metadata(
                            display_name=f"predicted probability of {name}{suffix}",
                            description="",
                        ),
                    )
                num_thresholds = 101
                tf.summary.write(
                    f"{tag}/pr_curve{suffix}",
                    metrics_lib.pr_curve_tensor(positives[c], negatives[c], num_thresholds),
                    metadata=pr_curve_metadata.create_summary_metadata(
                        display_name=f"PR curve{suffix}",
                        description="",
                        num_thresholds=num_thresholds,
                    ),
                )

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _histogram_tensor(counts: np.ndarray, num_bins: int = 50) -> np.ndarray:
    """[num_bins, 3] (left edge, right edge, count) from fine bucket counts."""
    merged = counts.reshape(num_bins, -1).sum(axis=1)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    return np.stack([edges[:-1], edges[1:], merged], axis=1).astype(np.float64)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
