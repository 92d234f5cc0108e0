"""Batch prediction: every row of every input file scored exactly once, over N workers.

Each worker reads its own files or rows (the source's `prediction_batches`, the same
split between pipelines the training readers make), scores them with the exported
model and the calibration and thresholds of `export/deploy.json`, and writes its own
part files (serving/prediction_output.py: how the output directory is claimed, written
part by part and resumed):

    DIR/part-<worker>-of-<workers>-<k>.csv
                        file, row, probability, decision
                        (probability_<k>, decision_<k> for K outputs; multiclass:
                        probability_<k> and the class id; per-pixel: file, row, mask,
                        pixels_<k> and one PNG per image, serving/mask_writer.py)
    DIR/prediction.json written last, by the chief: what was scored, with what, how many
                        rows per part, and the rows that failed (an input that could not
                        be decoded) with their reason
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from focal_dist.serving import mask_writer
from focal_dist.serving.calibration import Calibration
from focal_dist.serving.prediction_output import PartWriter
from focal_dist.workdir import WorkDir


class PredictionError(ValueError):
    """Prediction cannot start (a missing export, a wrong schema)."""


def load_export(workdir: str) -> tuple[dict, dict]:
    """(deploy.json, config.json) of a trained work dir, or PredictionError naming them."""
    layout = WorkDir(workdir)
    deploy_path, config_path, model_path = layout.deploy_json, layout.config, layout.model_keras
    for path in (deploy_path, config_path, model_path):
        if not os.path.exists(path):
            raise PredictionError(
                f"--workdir {workdir!r} has no {os.path.relpath(path, workdir)}: it is not a "
                "finished training run (train it to the end first; its export is written then)"
            )
    with open(deploy_path) as handle, open(config_path) as other:
        return json.load(handle), json.load(other)


def columns(label_mode: str, num_outputs: int) -> list[str]:
    """The part files' columns after file and row."""
    if label_mode == "sparse":
        return [*(f"probability_{k}" for k in range(num_outputs)), "decision"]
    if num_outputs == 1:
        return ["probability", "decision"]
    return [f"probability_{k}" for k in range(num_outputs)] + [
        f"decision_{k}" for k in range(num_outputs)
    ]


def scorer_for(deploy: dict):
    """The scorer of deploy.json's label mode: per-pixel masks (serving/mask_writer.py)
    or calibrated scores (`Scorer`). Either maps a replica's logits to the outputs its
    `writer` writes."""
    return {mask_writer.LABEL_MODE: mask_writer.MaskScorer}.get(deploy["label_mode"], Scorer)(
        deploy
    )


class Scorer:
    """logits -> {probabilities (calibrated), decisions} with deploy.json's parameters."""

    def __init__(self, deploy: dict):
        self.calibration = Calibration.from_dict(
            {k: v for k, v in deploy["calibration"].items() if k != "formula"}
        )
        self.label_mode = deploy["label_mode"]
        self.num_outputs = int(deploy["num_outputs"])
        decision = deploy.get("decision") or {}
        thresholds = decision.get("thresholds")
        self.thresholds = None if thresholds is None else tf.constant(thresholds, tf.float32)

    def __call__(self, logits) -> dict:
        probabilities = self.calibration.apply_tf(logits)
        if self.thresholds is None:
            decisions = tf.argmax(probabilities, axis=-1)[:, None]
        else:
            decisions = tf.cast(probabilities >= self.thresholds, tf.int64)
        return {"probabilities": probabilities, "decisions": decisions}

    def writer(self, directory: str, worker: int, num_workers: int, **options) -> PartWriter:
        header = columns(self.label_mode, self.num_outputs)
        return ScoreWriter(directory, worker, num_workers, header, **options)


class ScoreWriter(PartWriter):
    """One worker's part files of calibrated scores (the columns of `columns`)."""

    def write(self, outputs: dict) -> None:
        """One replica's rows: NumPy `file`, `row`, `probabilities`, `decisions`."""
        files, rows = outputs["file"], outputs["row"]
        probabilities, decisions = outputs["probabilities"], outputs["decisions"]
        values = np.concatenate(
            [probabilities.astype(object), decisions.astype(np.int64).astype(object)], axis=1
        )
        files = [f.decode() if isinstance(f, bytes) else f for f in files]
        self._writer.writerows(
            [f, int(r), *v] for f, r, v in zip(files, rows, values.tolist(), strict=True)
        )


class Progress:
    """A log line every `every` seconds: rows scored, rows/s and, with a known total, ETA."""

    def __init__(self, total: int | None, every: float = 10.0):
        self.total, self.every = total, every
        self.start = self.last = time.perf_counter()

    def update(self, rows: int, *, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last < self.every:
            return
        self.last = now
        rate = rows / max(now - self.start, 1e-9)
        eta = f"  ETA {(self.total - rows) / max(rate, 1e-9):.0f}s" if self.total else ""
        logging.info("scored %d rows  %.0f rows/s%s", rows, rate, eta)
