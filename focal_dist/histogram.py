r"""Counts labels over a distributed data set and writes class weights as JSON.

    python -m focal_dist.histogram --data=train-*.tfrecord --num_classes=1 \
        --label_mode=binary --distribution=horovod --output=weights.json

Reads the same sources as training (TFRecord, CSV, Parquet; for Parquet only the label
columns), counts each pipeline's shard and all-reduces the counts, so every example is
counted once whatever the number of workers. The chief writes the JSON (counts, weights
of every scheme, focal alpha) and prints a table.
"""

from __future__ import annotations

import os
import time

import numpy as np
from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "File, glob or comma-separated list of files.", required=True)
flags.DEFINE_string("source", None, "tfrecord, csv or parquet; default: from the extension.")
flags.DEFINE_integer("num_classes", None, "C (binary: 1).", required=True)
flags.DEFINE_enum(
    "label_mode",
    None,
    ["binary", "multi_label", "sparse", "categorical"],
    "Label layout.",
    required=True,
)
flags.DEFINE_list("label_column", ["label"], "Label column(s) or TFRecord feature key.")
flags.DEFINE_enum(
    "distribution", "default", ["default", "mirrored", "multiworker", "horovod"], "Backend."
)
flags.DEFINE_integer("num_cpu_devices", None, "Logical CPU devices for mirrored.")
flags.DEFINE_string("output", None, "JSON file to write (chief only).")
flags.DEFINE_enum(
    "scheme",
    "balanced",
    ["balanced", "inverse", "inverse_sqrt", "effective_number"],
    "Scheme shown in the table.",
)
flags.DEFINE_float("beta", 0.999, "beta of effective_number.")
flags.DEFINE_integer("min_count", None, "Floor for empty classes (else they are an error).")
flags.DEFINE_integer("batch_size", 8192, "Labels per batch read.")


def histogram_report(histogram, *, beta: float, min_count) -> dict:
    """The JSON document: counts, weights under every scheme, focal alpha."""
    from focal_dist import class_weights as cw

    report = histogram.to_dict()
    report["class_weights"] = {
        scheme: cw.class_weights(histogram, scheme, beta=beta, min_count=min_count).tolist()
        for scheme in cw.SCHEMES
    }
    if histogram.label_mode == "binary":
        report["focal_alpha"] = cw.focal_alpha(histogram, min_count=min_count)
    elif histogram.label_mode == "multi_label":
        # Each label its own alpha (its negative share), as loss.alpha = "auto" uses.
        report["focal_alpha"] = cw.focal_alpha(
            histogram, per_output=True, min_count=min_count
        ).tolist()
    return report


def format_table(report: dict, scheme: str) -> str:
    weights = report["class_weights"][scheme]
    total = report["num_examples"]
    lines = [f"{report['num_examples']} examples, label_mode={report['label_mode']}"]
    if report["label_mode"] in ("binary", "multi_label"):
        header = f"{'output':>8}{'positives':>12}{'rate':>10}{'w_neg':>10}{'w_pos':>10}"
        lines.append(header + f"{'alpha':>10}")
        positives = report["counts"][1:] if report["label_mode"] == "binary" else report["counts"]
        alphas = np.atleast_1d(report["focal_alpha"])
        for c, count in enumerate(positives):
            lines.append(
                f"{c:>8}{count:>12}{count / total:>10.4%}{weights[0][c]:>10.4f}"
                f"{weights[1][c]:>10.4f}{alphas[c]:>10.4f}"
            )
        lines.append("alpha: the focal alpha of the positive class (its negative share)")
    else:
        lines.append(f"{'class':>8}{'count':>12}{'share':>10}{'weight':>10}")
        for c, count in enumerate(report["counts"]):
            lines.append(f"{c:>8}{count:>12}{count / total:>10.4%}{weights[c]:>10.4f}")
    lines.append(f"weights: {scheme}")
    return "\n".join(lines)


def main(argv):
    del argv
    from focal_dist import atomic_files, data
    from focal_dist import class_weights as cw
    from focal_dist.distribute import get_backend

    options = {"num_cpu_devices": FLAGS.num_cpu_devices} if FLAGS.distribution == "mirrored" else {}
    backend = get_backend(FLAGS.distribution, **options)
    source = FLAGS.source or data.source_from_path(FLAGS.data)
    if source not in data.FILE_SOURCES:
        raise app.UsageError(
            f"--source must be one of {', '.join(data.FILE_SOURCES)}; got {source!r}"
        )

    def pipeline(info):
        # Labels only (Parquet reads no feature column): unlike a training run's label
        # pass, which also checks every feature value.
        return data.make_dataset(
            source,
            FLAGS.data,
            info,
            label_column=FLAGS.label_column,
            labels_only=True,
            batch_size=info.per_replica_batch_size,
        )

    start = time.perf_counter()
    histogram = cw.label_histogram(
        pipeline,
        num_classes=FLAGS.num_classes,
        label_mode=FLAGS.label_mode,
        backend=backend,
        label_fn=lambda labels: labels,
        batch_size=FLAGS.batch_size,
    )
    seconds = time.perf_counter() - start
    logging.info(
        "worker %d/%d: counted %d examples in %.1fs (%.3g labels/s)",
        backend.worker_index,
        backend.num_workers,
        histogram.num_examples,
        seconds,
        histogram.num_examples / seconds,
    )
    report = histogram_report(histogram, beta=FLAGS.beta, min_count=FLAGS.min_count)
    if backend.is_chief:
        print(format_table(report, FLAGS.scheme), flush=True)
        if FLAGS.output:
            os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
            atomic_files.write_json(FLAGS.output, report)  # never a half-written file
            logging.info("wrote %s", FLAGS.output)


if __name__ == "__main__":
    app.run(main)
