r"""Counts labels over a distributed data set and writes class weights as JSON.

    python -m focal_dist.histogram --data=train-*.tfrecord --num_classes=1 \
        --label_mode=binary --distribution=horovod --output=weights.json

    # Segmentation masks: valid pixels per class (the ignore label not counted).
    python -m focal_dist.histogram --data=train/ --source=segmentation_folder \
        --num_classes=3 --label_mode=sparse --output=pixel_weights.json

Reads the same sources as training (TFRecord, CSV, Parquet; for Parquet only the label
columns; segmentation_folder and segmentation_tfrecord masks, each checked as training
checks it), counts each pipeline's shard and all-reduces the counts, so every example
(every valid pixel) is counted once whatever the number of workers. The chief writes
the JSON (counts, weights of every scheme, focal alpha) and prints a table.
"""

from __future__ import annotations

import os
import time

import numpy as np
from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "File, glob or comma-separated list of files.", required=True)
flags.DEFINE_string(
    "source",
    None,
    "tfrecord, csv, parquet, segmentation_folder or segmentation_tfrecord; default: from "
    "the extension.",
)
flags.DEFINE_integer("ignore_label", 255, "Segmentation masks: the value not counted.")
flags.DEFINE_string("image_key", "image/encoded", "segmentation_tfrecord: the image key.")
flags.DEFINE_string(
    "mask_key", "image/segmentation/class/encoded", "segmentation_tfrecord: the mask key."
)
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


MASK_SOURCES = ("segmentation_folder", "segmentation_tfrecord")


def mask_pixel_ids(source: str, info):
    """This pipeline's masks as the class ids of their valid pixels, checked as training
    checks them (data/sources/segmentation_files.py)."""
    from focal_dist import data
    from focal_dist.configs import segmentation

    config = segmentation.get_config().data
    config.source, config.path = source, FLAGS.data
    config.ignore_label, config.image_key, config.mask_key = (
        FLAGS.ignore_label,
        FLAGS.image_key,
        FLAGS.mask_key,
    )
    reader = data.get_source(config, label_mode="sparse", num_classes=FLAGS.num_classes)
    return reader.label_batches(info)


def main(argv):
    del argv
    from focal_dist import atomic_files, data
    from focal_dist import class_weights as cw
    from focal_dist.distribute import get_backend

    options = {"num_cpu_devices": FLAGS.num_cpu_devices} if FLAGS.distribution == "mirrored" else {}
    backend = get_backend(FLAGS.distribution, **options)
    source = FLAGS.source or data.source_from_path(FLAGS.data)
    known = (*data.FILE_SOURCES, *MASK_SOURCES)
    if source not in known:
        raise app.UsageError(f"--source must be one of {', '.join(known)}; got {source!r}")
    if source in MASK_SOURCES and FLAGS.label_mode != "sparse":
        raise app.UsageError(
            f"--source={source} counts pixel class ids: --label_mode must be sparse; got "
            f"{FLAGS.label_mode!r}"
        )

    def pipeline(info):
        if source in MASK_SOURCES:
            return mask_pixel_ids(source, info)
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
    from focal_dist import _cli

    _cli.run(main)
