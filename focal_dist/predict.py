r"""Scores files with a trained run's export: every input row exactly once, on any backend.

    python -m focal_dist.predict --workdir=runs/x --data='new-*.csv' --output=scores/ \
        [--distribution=default|mirrored|multiworker|horovod] [--num_cpu_devices=N] \
        [--allow_failed_inputs] [--commit_secs=60]

Reads the same sources as training (the work dir's `data.source`: CSV, Parquet,
TFRecord, image folders or image TFRecords, segmentation folders or TFRecords; labels
and masks are not needed), applies the model, its calibration and its thresholds from
`export/` (serving/batch_predict.py says what is written: part files per worker, then
`prediction.json`; a segmentation run also writes one PNG mask per image,
serving/mask_writer.py). Every worker scores its own files or rows; together they score
each row once. Progress lines give rows/s. An image that cannot be decoded (truncated,
not an image, empty) is not scored: `prediction.json` lists it under "failed" with the
decoder's message, and every other row is scored. A rerun of the same command into the
same --output resumes (serving/prediction_output.py): committed rows are kept, the rest
(failed rows included) is scored.

Exit status: 0 when every row is scored; 3 (FAILED_INPUTS) when some inputs could not
be decoded and were not scored (one line names how many and where they are listed; 0
with --allow_failed_inputs); 1 with one line naming the problem (a work dir without an
export, an output that holds another prediction's results or a finished one, a file
whose columns are not the model's, a NaN feature with its file and row).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A finished training run (its config.json and export/).")
flags.DEFINE_string("data", None, "Files to score: a path, a glob or a comma-separated list.")
flags.DEFINE_string("output", None, "Directory for the part files and prediction.json.")
flags.DEFINE_enum(
    "distribution", "default", ["default", "mirrored", "multiworker", "horovod"], "Backend."
)
flags.DEFINE_integer("num_cpu_devices", None, "mirrored: split the CPU into N devices.")
flags.DEFINE_integer("batch_size", 1024, "Rows per replica per step.")
flags.DEFINE_string(
    "source",
    None,
    "The format of --data (csv, parquet, tfrecord, image_folder, image_tfrecord, "
    "segmentation_folder, segmentation_tfrecord); default: the run's data.source (required "
    "for a run trained on synthetic data).",
)
flags.DEFINE_bool(
    "allow_failed_inputs",
    False,
    "Exit 0 when some inputs could not be decoded (prediction.json lists them either way).",
)
flags.DEFINE_float(
    "commit_secs",
    60.0,
    "Seconds between a worker's part files: each is renamed into --output whole, so a "
    "killed prediction, rerun, scores again at most this much of each worker's work; 0: "
    "after every batch.",
)
flags.mark_flags_as_required(["workdir", "data", "output"])

# The exit status of a prediction that scored every row but those it could not decode.
FAILED_INPUTS = 3


def _source(config, deploy: dict, data: str):
    """The work dir's source, reading `data` (its training files need not exist here)."""
    from focal_dist.data import get_source

    config.data.path = data
    config.data.eval_path = config.data.calibration_path = ""
    if FLAGS.source:
        config.data.source = FLAGS.source
    return get_source(
        config.data, label_mode=deploy["label_mode"], num_classes=deploy["num_outputs"]
    )


def _check_schema(source, deploy: dict, model, data: str) -> None:
    """The files' features are the model's: same columns (tables), same width."""
    from focal_dist.serving.batch_predict import PredictionError

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


def main(argv):
    del argv
    from focal_dist.distribute import get_backend

    options = {"num_cpu_devices": FLAGS.num_cpu_devices} if FLAGS.distribution == "mirrored" else {}
    backend = get_backend(FLAGS.distribution, **options)

    from focal_dist import _cli
    from focal_dist.data import checks
    from focal_dist.serving.batch_predict import PredictionError
    from focal_dist.serving.prediction_output import OutputError

    try:
        with checks.bad_data_as_data_error():
            return _predict(backend)
    except (PredictionError, OutputError, *_cli.user_errors()) as error:
        return _cli.report(error)


def _predict(backend) -> int:
    import keras
    import numpy as np
    import tensorflow as tf
    from ml_collections import config_dict

    from focal_dist.serving import batch_predict, prediction_output
    from focal_dist.workdir import WorkDir

    deploy, config = batch_predict.load_export(FLAGS.workdir)
    with backend.scope():
        model = keras.models.load_model(WorkDir(FLAGS.workdir).model_keras, compile=False)
    source = _source(config_dict.ConfigDict(config), deploy, FLAGS.data)
    _check_schema(source, deploy, model, FLAGS.data)
    # Claimed once the input is known to fit the model: a refused input leaves no claim.
    refused = None
    if backend.is_chief:
        run = prediction_output.identity(
            workdir=FLAGS.workdir,
            data=FLAGS.data,
            source=source.name,
            files=source.prediction_files(FLAGS.data),
        )
        try:
            prediction_output.claim(FLAGS.output, run)
        except prediction_output.OutputError as error:
            refused = error
    backend.raise_together(
        refused, prediction_output.OutputError("the chief refused --output; see its log")
    )
    # Every worker reads what earlier attempts committed: parts of its own shard that
    # another worker commits meanwhile change nothing it reads (data/scored_rows.py).
    scored, _ = prediction_output.read_parts(FLAGS.output)
    if len(scored):
        logging.info(
            "worker %d: %d rows scored by an earlier attempt are kept; scoring the rest",
            backend.worker_index,
            len(scored),
        )
    score = batch_predict.scorer_for(deploy)

    def replica(batch):
        features = batch["features"]
        # An empty replica batch never reaches the model (oneDNN's Conv2D fails on one).
        logits = tf.cond(
            tf.shape(features)[0] > 0,
            lambda: tf.cast(model(features, training=False), tf.float32),
            lambda: tf.zeros([0, *model.output_shape[1:]]),
        )
        # What the writer needs of the batch (file, row; a mask's name and size; why an
        # input failed) travels on.
        kept = {name: value for name, value in batch.items() if name != "features"}
        return {**kept, **score(logits)}

    step = tf.function(lambda batch: backend.run(replica, args=(batch,)), autograph=False)
    per_replica = FLAGS.batch_size
    dataset = backend.distribute_dataset(
        lambda info: source.prediction_batches(FLAGS.data, info, per_replica, scored),
        per_replica * backend.num_replicas_in_sync,
    )
    writer = score.writer(
        FLAGS.output, backend.worker_index, backend.num_workers, commit_seconds=FLAGS.commit_secs
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
    failed = int(counts[backend.num_workers :].sum())
    if backend.is_chief:
        _write_manifest(backend, deploy, scored_now=int(counts[: backend.num_workers].sum()))
    # Distribution: no worker exits before the manifest is written (a launcher stops the
    # others when one exits non-zero).
    backend.sum_across_workers(tf.zeros([1], tf.float64))
    sys.stdout.flush()
    if not failed:
        return 0
    if backend.is_chief:
        report = logging.warning if FLAGS.allow_failed_inputs else logging.error
        report(
            "%d input(s) could not be decoded and were not scored: %s lists each under "
            '"failed" with its file, row and reason; rerun the same command to retry them%s',
            failed,
            os.path.join(FLAGS.output, prediction_output.MANIFEST),
            "" if FLAGS.allow_failed_inputs else " (--allow_failed_inputs: exit status 0)",
        )
    sys.stdout.flush()
    return 0 if FLAGS.allow_failed_inputs else FAILED_INPUTS


def _write_manifest(backend, deploy: dict, scored_now: int) -> None:
    """prediction.json: every committed part (of every attempt) and every failed row."""
    from focal_dist.serving import prediction_output

    _, parts = prediction_output.read_parts(FLAGS.output)
    failed = prediction_output.read_failures(FLAGS.output)
    prediction_output.write_manifest(
        FLAGS.output,
        {
            "workdir": os.path.abspath(FLAGS.workdir),
            "data": FLAGS.data,
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
        FLAGS.output,
        scored_now,
        len(failed),
    )


def _score(backend, dataset, step, writer) -> None:
    """Scores this worker's batches into its part files."""
    from focal_dist.serving import batch_predict

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


if __name__ == "__main__":
    from focal_dist import _cli

    _cli.run(main)
