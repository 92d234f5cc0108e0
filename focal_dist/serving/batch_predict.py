"""Batch prediction: every row of every input file scored exactly once, over N workers.

Each worker reads its own files or rows (the source's `prediction_batches`, the same
split between pipelines the training readers make), scores them with the exported
model and the calibration and thresholds of `export/deploy.json`, and writes its own
part file:

    DIR/part-<worker>-of-<workers>.csv   file, row, probability, decision
                                         (probability_<k>, decision_<k> for K outputs;
                                         multiclass: probability_<k> and the class id;
                                         per-pixel: file, row, mask, pixels_<k> and one
                                         PNG per image, serving/mask_writer.py)
    DIR/prediction.json                  written last, by the chief: what was scored,
                                         with what, how many rows per part

Parts are written beside, then renamed, so a part is whole or absent. The first run
records what it is (`prediction.start.json`); a rerun of the same command resumes (each
worker keeps its part if whole), anything else into that DIR is refused before anything
is read, and so is a finished DIR: a rerun never mixes runs.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from focal_dist import atomic_files
from focal_dist.serving.calibration import Calibration

MANIFEST = "prediction.json"
STARTED = "prediction.start.json"


class PredictionError(ValueError):
    """Prediction cannot start (a missing export, an occupied output, a wrong schema)."""


def load_export(workdir: str) -> tuple[dict, dict]:
    """(deploy.json, config.json) of a trained work dir, or PredictionError naming them."""
    deploy_path = os.path.join(workdir, "export", "deploy.json")
    config_path = os.path.join(workdir, "config.json")
    model_path = os.path.join(workdir, "export", "model.keras")
    for path in (deploy_path, config_path, model_path):
        if not os.path.exists(path):
            raise PredictionError(
                f"--workdir {workdir!r} has no {os.path.relpath(path, workdir)}: it is not a "
                "finished training run (train it to the end first; its export is written then)"
            )
    with open(deploy_path) as handle, open(config_path) as other:
        return json.load(handle), json.load(other)


def prepare_output(directory: str, run: dict) -> None:
    """Claims `directory` for `run` (the work dir, data, export and worker count), or
    resumes the same run; PredictionError for a finished run or another one's output.

    A restarted job (a preempted pod) reruns the same command: its workers keep the
    parts already whole and score the rest. Anything else is refused, so parts of two
    runs never meet in one directory.
    """
    started = os.path.join(directory, STARTED)
    if os.path.exists(os.path.join(directory, MANIFEST)):
        raise PredictionError(
            f"--output {directory!r} holds a finished prediction ({MANIFEST}); choose a new "
            "--output or remove it"
        )
    if os.path.exists(started):
        with open(started) as handle:
            recorded = json.load(handle)
        if recorded != run:
            changed = sorted(k for k in set(run) | set(recorded) if run.get(k) != recorded.get(k))
            raise PredictionError(
                f"--output {directory!r} already holds results of another prediction "
                f"(it differs in {', '.join(changed)}); choose a new --output: a rerun never "
                "mixes its rows with another run's"
            )
        logging.info("resuming the prediction in %s: whole parts are kept", directory)
        return
    found = glob.glob(os.path.join(directory, "part-*"))
    if found:
        raise PredictionError(
            f"--output {directory!r} already holds results ({os.path.basename(sorted(found)[0])}, "
            f"{len(found)} file(s)) of an unknown run; choose a new --output or remove them"
        )
    os.makedirs(directory, exist_ok=True)
    atomic_files.write_json(started, run)


def run_identity(workdir: str, data: str, num_workers: int) -> dict:
    """What makes two predictions the same run: work dir, data, export, worker count."""
    with open(os.path.join(workdir, "export", "deploy.json"), "rb") as handle:
        export = hashlib.sha256(handle.read()).hexdigest()
    return {
        "workdir": os.path.abspath(workdir),
        "data": data,
        "export_sha256": export,
        "num_workers": num_workers,
    }


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
    from focal_dist.serving import mask_writer  # builds on this module's PartWriter

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

    def writer(self, directory: str, worker: int, num_workers: int) -> PartWriter:
        header = columns(self.label_mode, self.num_outputs)
        return PartWriter(directory, worker, num_workers, header)


def part_path(directory: str, worker: int, num_workers: int) -> str:
    return os.path.join(directory, f"part-{worker:05d}-of-{num_workers:05d}.csv")


def count_rows(path: str) -> int:
    """Rows of a whole part file (its header excluded)."""
    with open(path) as handle:
        return sum(1 for _ in handle) - 1


class PartWriter:
    """One worker's part file, written beside and renamed when complete."""

    def __init__(self, directory: str, worker: int, num_workers: int, header: list[str]):
        self.path = part_path(directory, worker, num_workers)
        self.temporary = os.path.join(directory, f".part-{worker:05d}.partial")
        # Open across many writes; `commit` or `abandon` closes it.
        self._handle = open(self.temporary, "w", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._handle)
        self._writer.writerow(["file", "row", *header])
        self.rows = 0

    def write(self, outputs: dict) -> None:
        """One replica's batch: numpy `file`, `row` and the scorer's outputs."""
        files, rows = outputs["file"], outputs["row"]
        probabilities, decisions = outputs["probabilities"], outputs["decisions"]
        values = np.concatenate(
            [probabilities.astype(object), decisions.astype(np.int64).astype(object)], axis=1
        )
        files = [f.decode() if isinstance(f, bytes) else f for f in files]
        self._writer.writerows(
            [f, int(r), *v] for f, r, v in zip(files, rows, values.tolist(), strict=True)
        )
        self.rows += len(rows)

    def commit(self) -> str:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self.temporary, self.path)
        return self.path

    def abandon(self) -> None:
        self._handle.close()
        if os.path.exists(self.temporary):
            os.remove(self.temporary)


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


def write_manifest(directory: str, document: dict) -> str:
    return atomic_files.write_json(os.path.join(directory, MANIFEST), document)
