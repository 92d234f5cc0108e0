"""Batch prediction as a function: `predict(workdir, data, output, backend=...)`.

What `python -m focal_dist.predict` runs, callable from a user's own program:

    from focal_dist.distribute import get_backend
    from focal_dist.serving.predict_run import predict

    result = predict("runs/x", "new-*.csv", "scores/", backend=get_backend("default"))
    result.rows, result.failed          # over every worker and every attempt

Every worker scores its own files or rows and, together, they score each row once
(serving/batch_predict.py: the part files; serving/prediction_output.py: the claim on
the output directory, the parts and the resume). Raises PredictionError (no export, the
files' columns or shape are not the model's) or OutputError (--output holds another
prediction's results) before anything is written.
"""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from ml_collections import config_dict

from focal_dist.serving import batch_predict, prediction_output
from focal_dist.serving.batch_predict import PredictionError
from focal_dist.workdir import WorkDir


@dataclasses.dataclass(frozen=True)
class PredictionResult:
    """What a prediction holds once every worker finished: `rows` scored (committed
    parts of every attempt), `failed` inputs that could not be decoded, `scored_now` rows
    this attempt scored, and the manifest's path."""

    rows: int
    failed: int
    scored_now: int
    manifest: str


def predict(
    workdir: str,
    data: str,
    output: str,
    *,
    backend,
    source: str | None = None,
    batch_size: int = 1024,
    commit_seconds: float = 60.0,
) -> PredictionResult:
    """Scores every row of `data` once into `output` with `workdir`'s export.

    `source`: the format of `data` (default: the run's `data.source`); `batch_size`:
    rows per replica per step; `commit_seconds`: seconds between a worker's part files.
    Every worker calls it with the same arguments.
    """
    deploy, config = batch_predict.load_export(workdir)
    with backend.scope():
        model = keras.models.load_model(WorkDir(workdir).model_keras, compile=False)
    reader = _source(config_dict.ConfigDict(config), deploy, data, source)
    _check_schema(reader, deploy, model, data)
    # Claimed once the input is known to fit the model: a refused input leaves no claim.
    refused = None
    if backend.is_chief:
        run = prediction_output.identity(
            workdir=workdir, data=data, source=reader.name, files=reader.prediction_files(data)
        )
        try:
            prediction_output.claim(output, run)
        except prediction_output.OutputError as error:
            refused = error
    backend.raise_together(
        refused, prediction_output.OutputError("the chief refused --output; see its log")
    )
    # Every worker reads what earlier attempts committed: parts of its own shard that
    # another worker commits meanwhile change nothing it reads (data/scored_rows.py).
    scored, _ = prediction_output.read_parts(output)
    if len(scored):
        logging.info(
            "worker %d: %d rows scored by an earlier attempt are kept; scoring the rest",
            backend.worker_index,
            len(scored),
        )
    score = batch_predict.scorer_for(deploy)
    step = _scoring_step(backend, model, score)
    dataset = backend.distribute_dataset(
        lambda info: reader.prediction_batches(data, info, batch_size, scored),
        batch_size * backend.num_replicas_in_sync,
    )
    writer = score.writer(
        output, backend.worker_index, backend.num_workers, commit_seconds=commit_seconds
    )
    _score(backend, dataset, step, writer)
    # Distribution: one SUM of [rows of each worker..., failed rows of each worker...]
    # after every worker has closed its parts; then the chief writes the manifest.
    counts = np.zeros(2 * backend.num_workers, np.float64)
    counts[backend.worker_index] = writer.rows
    counts[backend.num_workers + backend.worker_index] = len(writer.failed)
    counts = backend.sum_across_workers(tf.constant(counts)).numpy().astype(int)
    logging.info(
        "worker %d: %d rows in %d part(s), %d failed",
        backend.worker_index,
        writer.rows,
        len(writer.parts),
        len(writer.failed),
    )
    scored_now = int(counts[: backend.num_workers].sum())
    if backend.is_chief:
        _write_manifest(backend, deploy, workdir, data, output, scored_now)
    # Distribution: no worker returns before the manifest is written (a launcher stops
    # the others when one exits).
    backend.sum_across_workers(tf.zeros([1], tf.float64))
    return PredictionResult(
        # Committed before this attempt, plus what every worker committed in it.
        rows=len(scored) + scored_now,
        failed=int(counts[backend.num_workers :].sum()),
        scored_now=scored_now,
        manifest=os.path.join(output, prediction_output.MANIFEST),
    )


def _source(config, deploy: dict, data: str, source: str | None):
    """The work dir's source, reading `data` (its training files need not exist here)."""
    from focal_dist.data import get_source

    config.data.path = data
    config.data.eval_path = config.data.calibration_path = ""
    if source:
        config.data.source = source
    return get_source(
        config.data, label_mode=deploy["label_mode"], num_classes=deploy["num_outputs"]
    )


def _check_schema(source, deploy: dict, model, data: str) -> None:
    """The files' features are the model's: same columns (tables), same width."""
    signature = deploy["saved_model"]["signatures"].get("examples", {})
    example = signature.get("inputs", {}).get("examples", {}).get("tf.train.Example", {})
    names = example.get("features")
    found = source.serving_inputs().get("column_names")
    if names is not None and found is not None and list(found) != list(names):
        raise PredictionError(
            f"--data {data!r} has feature columns {list(found)}; the model was trained on "
            f"{list(names)}"
        )
    if tuple(source.input_shape) != tuple(model.input_shape[1:]):
        raise PredictionError(
            f"--data {data!r} gives features of shape {tuple(source.input_shape)}; the model "
            f"takes {tuple(model.input_shape[1:])}"
        )


def _scoring_step(backend, model, score):
    """One step on every replica: the model, then `score`; what the writer needs of the
    batch (file, row; a mask's name and size; why an input failed) travels on."""

    def replica(batch):
        features = batch["features"]
        # An empty replica batch never reaches the model (oneDNN's Conv2D fails on one).
        logits = tf.cond(
            tf.shape(features)[0] > 0,
            lambda: tf.cast(model(features, training=False), tf.float32),
            lambda: tf.zeros([0, *model.output_shape[1:]]),
        )
        kept = {name: value for name, value in batch.items() if name != "features"}
        return {**kept, **score(logits)}

    return tf.function(lambda batch: backend.run(replica, args=(batch,)), autograph=False)


def _score(backend, dataset, step, writer) -> None:
    """Scores this worker's batches into its part files."""
    progress = batch_predict.Progress(total=None)
    try:
        for batch in dataset:
            outputs = {name: backend.local_results(t) for name, t in step(batch).items()}
            for replica in range(len(outputs["row"])):
                writer.add({name: values[replica].numpy() for name, values in outputs.items()})
            progress.update(writer.rows)
        progress.update(writer.rows, force=True)
        writer.close()
    except BaseException:
        writer.abandon()  # the parts already committed stay
        raise


def _write_manifest(backend, deploy: dict, workdir, data, output, scored_now: int) -> None:
    """prediction.json: every committed part (of every attempt) and every failed row."""
    _, parts = prediction_output.read_parts(output)
    failed = prediction_output.read_failures(output)
    prediction_output.write_manifest(
        output,
        {
            "workdir": os.path.abspath(workdir),
            "data": data,
            "distribution": backend.name,
            "rows": sum(parts.values()),
            "parts": parts,
            "failed": failed,
            "label_mode": deploy["label_mode"],
            "thresholds": (deploy.get("decision") or {}).get("thresholds"),
        },
    )
    logging.info(
        "scored %d rows into %s (%d by this attempt), %d failed",
        sum(parts.values()),
        output,
        scored_now,
        len(failed),
    )
