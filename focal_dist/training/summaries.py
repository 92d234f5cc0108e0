"""TensorBoard summaries, written by the chief only.

Non-chief workers get a writer that writes nothing, so code that logs never asks who
it runs on. One run is one continuous record across restarts: a process that resumes
from the checkpoint of step S first writes a SessionLog START event at step S + 1, which
tells TensorBoard to drop what a killed process wrote for steps > S (the summaries of
steps <= S are flushed before ckpt-S is saved, see `open`). PR curves use the pr_curve
plugin's metadata with `tf.summary.write` (its own summary ops are TF1 only), which
`tensor` writes for a task's evaluation (tasks/bucket_metrics.py).
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import event_pb2
from tensorboard.plugins.hparams import api as hparams_api


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
                # Lists (summary.json's eval.iou) are not scalars: their items have tags.
                if isinstance(value, (int, float, np.number)) and np.isfinite(value):
                    tf.summary.scalar(prefix + name, float(value))

    def text(self, name: str, markdown: str, step: int = 0) -> None:
        if self._writer is not None:
            with self._writer.as_default(step=step):
                tf.summary.text(name, markdown)

    def hparams(self, flat_config: dict) -> None:
        if self._writer is not None:
            with self._writer.as_default():
                hparams_api.hparams(flat_config)

    def tensor(self, tag: str, value, metadata, step: int) -> None:
        """A summary tensor with a plugin's metadata (PR curves, histograms)."""
        if self._writer is not None:
            with self._writer.as_default(step=step):
                tf.summary.write(tag, value, metadata=metadata)

    def image(self, tag: str, image, step: int, description: str = "") -> None:
        """One uint8 [H, W, 3] image."""
        if self._writer is not None:
            with self._writer.as_default(step=step):
                tf.summary.image(tag, np.asarray(image)[None], step=step, description=description)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
