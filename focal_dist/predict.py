r"""Scores files with a trained run's export: every input row exactly once, on any backend.

    python -m focal_dist.predict --workdir=runs/x --data='new-*.csv' --output=scores/ \
        [--distribution=default|mirrored|multiworker|horovod] [--num_cpu_devices=N] \
        [--allow_failed_inputs] [--commit_secs=60]

Reads the same sources as training (the work dir's `data.source`: CSV, Parquet,
TFRecord, image folders or image TFRecords, segmentation folders or TFRecords; labels
and masks are not needed), applies the model, its calibration and its thresholds from
`export/` (serving/predict_run.py's `predict`, the same as a function;
serving/batch_predict.py says what is written: part files per worker, then
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
    from focal_dist.serving.predict_run import predict

    result = predict(
        FLAGS.workdir,
        FLAGS.data,
        FLAGS.output,
        backend=backend,
        source=FLAGS.source,
        batch_size=FLAGS.batch_size,
        commit_seconds=FLAGS.commit_secs,
    )
    sys.stdout.flush()
    if not result.failed:
        return 0
    if backend.is_chief:
        report = logging.warning if FLAGS.allow_failed_inputs else logging.error
        report(
            "%d input(s) could not be decoded and were not scored: %s lists each under "
            '"failed" with its file, row and reason; rerun the same command to retry them%s',
            result.failed,
            result.manifest,
            "" if FLAGS.allow_failed_inputs else " (--allow_failed_inputs: exit status 0)",
        )
    sys.stdout.flush()
    return 0 if FLAGS.allow_failed_inputs else FAILED_INPUTS


if __name__ == "__main__":
    from focal_dist import _cli

    _cli.run(main)
