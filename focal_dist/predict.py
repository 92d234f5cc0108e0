r"""Scores files with a trained run's export: every input row exactly once, on any backend.

    python -m focal_dist.predict --workdir=runs/x --data='new-*.csv' --output=scores/ \
        [--distribution=default|mirrored|multiworker|horovod] [--num_cpu_devices=N]

Reads the same sources as training (the work dir's `data.source`: CSV, Parquet,
TFRecord, image folders or image TFRecords, segmentation folders or TFRecords; labels
and masks are not needed), applies the model, its calibration and its thresholds from
`export/` (serving/batch_predict.py says what is written: one part file per worker, then
`prediction.json`; a segmentation run also writes one PNG mask per image,
serving/mask_writer.py). Every worker scores its own files or rows; together they score
each row once. Progress lines give rows/s.

Exit status 0 when every part is written; 1 with one line naming the problem (a work
dir without an export, an output that already holds results, a file whose columns are
not the model's, a NaN feature with its file and row), before any part is written.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging

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
flags.mark_flags_as_required(["workdir", "data", "output"])


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

    try:
        with checks.bad_data_as_data_error():
            return _predict(backend)
    except (PredictionError, *_cli.user_errors()) as error:
        return _cli.report(error)


def _predict(backend) -> int:
    import keras
    import numpy as np
    import tensorflow as tf
    from ml_collections import config_dict

    from focal_dist.serving import batch_predict
    from focal_dist.training import resume

    deploy, config = batch_predict.load_export(FLAGS.workdir)
    refused = ""
    if backend.is_chief:
        run = batch_predict.run_identity(FLAGS.workdir, FLAGS.data, backend.num_workers)
        try:
            batch_predict.prepare_output(FLAGS.output, run)
        except batch_predict.PredictionError as error:
            refused = str(error)
    if resume.any_worker(backend, bool(refused)):
        raise batch_predict.PredictionError(refused or "the chief refused --output; see its log")
    done = batch_predict.part_path(FLAGS.output, backend.worker_index, backend.num_workers)
    with backend.scope():
        model = keras.models.load_model(
            os.path.join(FLAGS.workdir, "export", "model.keras"), compile=False
        )
    source = _source(config_dict.ConfigDict(config), deploy, FLAGS.data)
    _check_schema(source, deploy, model, FLAGS.data)
    score = batch_predict.scorer_for(deploy)

    def replica(batch):
        features = batch["features"]
        # An empty replica batch never reaches the model (oneDNN's Conv2D fails on one).
        logits = tf.cond(
            tf.shape(features)[0] > 0,
            lambda: tf.cast(model(features, training=False), tf.float32),
            lambda: tf.zeros([0, *model.output_shape[1:]]),
        )
        # What the writer needs of the batch (file, row; a mask's name and size) travels on.
        kept = {name: value for name, value in batch.items() if name != "features"}
        return {**kept, **score(logits)}

    step = tf.function(lambda batch: backend.run(replica, args=(batch,)))
    per_replica = FLAGS.batch_size
    dataset = backend.distribute_dataset(
        lambda info: source.prediction_batches(FLAGS.data, info, per_replica),
        per_replica * backend.num_replicas_in_sync,
    )
    if os.path.exists(done):  # A resumed run: this worker's part is already whole.
        path, rows = done, batch_predict.count_rows(done)
        logging.info("worker %d keeps %s (%d rows)", backend.worker_index, done, rows)
    else:
        path, rows = _score(backend, dataset, step, score)
    counts = np.zeros(backend.num_workers, np.float64)
    counts[backend.worker_index] = rows
    counts = backend.sum_across_workers(tf.constant(counts)).numpy().astype(int)
    logging.info("worker %d: %s (%d rows)", backend.worker_index, path, rows)
    if backend.is_chief:
        batch_predict.write_manifest(
            FLAGS.output,
            {
                "workdir": os.path.abspath(FLAGS.workdir),
                "data": FLAGS.data,
                "distribution": backend.name,
                "rows": int(counts.sum()),
                "parts": {
                    f"part-{w:05d}-of-{backend.num_workers:05d}.csv": int(c)
                    for w, c in enumerate(counts)
                },
                "label_mode": deploy["label_mode"],
                "thresholds": (deploy.get("decision") or {}).get("thresholds"),
            },
        )
        logging.info("scored %d rows into %s", int(counts.sum()), FLAGS.output)
    sys.stdout.flush()
    return 0


def _score(backend, dataset, step, score) -> tuple[str, int]:
    """Scores this worker's batches into its part file; (its path, its rows)."""
    from focal_dist.serving import batch_predict

    writer = score.writer(FLAGS.output, backend.worker_index, backend.num_workers)
    progress = batch_predict.Progress(total=None)
    try:
        for batch in dataset:
            outputs = {name: backend.local_results(t) for name, t in step(batch).items()}
            for replica in range(len(outputs["row"])):
                writer.write({name: values[replica].numpy() for name, values in outputs.items()})
            progress.update(writer.rows)
    except BaseException:
        writer.abandon()
        raise
    progress.update(writer.rows, force=True)
    return writer.commit(), writer.rows


if __name__ == "__main__":
    from focal_dist import _cli

    app.run(main, flags_parser=_cli.parse_flags)
