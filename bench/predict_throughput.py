"""Rows/s of `python -m focal_dist.predict` against Keras's `model.predict`, like for like.

The same exported model (a run trained here on a CSV table), the same CSV files, the
same batch size, each side one fresh process started the same way, timed whole and in
turns (ours, theirs, ours, ...), medians kept:

    ours    python -m focal_dist.predict: read and check the CSV, the model, calibration
            and threshold, one part file of file, row, probability, decision
    keras   the same CSV read with tf.data (CsvDataset, the features columns), the same
            batch, `model.predict`; "+ write" also writes the probabilities (np.savetxt)

    .venv/bin/python bench/predict_throughput.py [--rows=1000000] [--repeats=3]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from absl import app, flags

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
FLAGS = flags.FLAGS
flags.DEFINE_integer("rows", 1_000_000, "Rows to score, over 4 files.")
flags.DEFINE_integer("features", 32, "Feature columns.")
flags.DEFINE_integer("batch_size", 1024, "Rows per batch on both sides.")
flags.DEFINE_integer("repeats", 3, "Turns per side.")

KERAS_SIDE = textwrap.dedent(
    """
    import os, sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras, numpy as np, tensorflow as tf
    workdir, pattern, batch, features, write = sys.argv[1:6]
    model = keras.models.load_model(os.path.join(workdir, "export", "model.keras"), compile=False)
    files = sorted(tf.io.gfile.glob(pattern))
    columns = list(range(1, int(features) + 1))
    data = tf.data.experimental.CsvDataset(
        files, [tf.float32] * int(features), header=True, select_cols=columns
    ).batch(int(batch)).map(lambda *c: tf.stack(c, axis=1)).prefetch(tf.data.AUTOTUNE)
    scores = model.predict(data, verbose=0)
    if write == "1":
        np.savetxt(os.path.join(workdir, "keras_scores.csv"), scores, fmt="%.8g")
    print(len(scores))
    """
)


def _write_tables(directory: Path, rows: int, features: int) -> str:
    rng = np.random.default_rng(0)
    per_file = rows // 4
    header = ",".join(["label", *(f"f{i}" for i in range(features))])
    for k in range(4):
        x = rng.normal(size=(per_file, features)).astype(np.float32)
        y = (x[:, 0] > 1.5).astype(np.int64)
        table = np.concatenate([y[:, None], x], axis=1)
        np.savetxt(directory / f"score-{k}.csv", table, delimiter=",", header=header,
                   comments="", fmt=["%d", *["%.5f"] * features])  # fmt: skip
    return str(directory / "score-*.csv")


def _train(directory: Path, features: int) -> Path:
    rng = np.random.default_rng(1)
    header = ",".join(["label", *(f"f{i}" for i in range(features))])
    for name, rows in (("train", 20_000), ("calibration", 5_000)):
        x = rng.normal(size=(rows, features)).astype(np.float32)
        y = (x[:, 0] > 1.5).astype(np.int64)
        np.savetxt(directory / f"{name}.csv", np.concatenate([y[:, None], x], axis=1),
                   delimiter=",", header=header, comments="",
                   fmt=["%d", *["%.5f"] * features])  # fmt: skip
    workdir = directory / "run"
    subprocess.run(
        [PYTHON, "-m", "focal_dist.train", "--config=csv", f"--workdir={workdir}",
         f"--config.data.path={directory / 'train.csv'}",
         f"--config.data.calibration_path={directory / 'calibration.csv'}",
         "--config.train.steps=200", "--config.train.eval_every=0"],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    return workdir


def _time(command) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv):
    del argv
    directory = Path(tempfile.mkdtemp(prefix="predict_bench_"))
    try:
        workdir = _train(directory, FLAGS.features)
        pattern = _write_tables(directory, FLAGS.rows, FLAGS.features)
        keras_script = directory / "keras_side.py"
        keras_script.write_text(KERAS_SIDE)
        times = {"ours": [], "keras": [], "keras + write": []}
        for turn in range(FLAGS.repeats):
            output = directory / f"scores-{turn}"
            times["ours"].append(
                _time(
                    [
                        PYTHON,
                        "-m",
                        "focal_dist.predict",
                        f"--workdir={workdir}",
                        f"--data={pattern}",
                        f"--output={output}",
                        f"--batch_size={FLAGS.batch_size}",
                    ]
                )  # fmt: skip
            )
            for name, write in (("keras", "0"), ("keras + write", "1")):
                times[name].append(
                    _time(
                        [
                            PYTHON,
                            str(keras_script),
                            str(workdir),
                            pattern,
                            str(FLAGS.batch_size),
                            str(FLAGS.features),
                            write,
                        ]
                    )  # fmt: skip
                )
        rows = FLAGS.rows // 4 * 4
        medians = {name: statistics.median(values) for name, values in times.items()}
        print(f"{rows} rows, {FLAGS.features} features, batch {FLAGS.batch_size}, "
              f"median of {FLAGS.repeats} turns, whole processes")  # fmt: skip
        for name, seconds in medians.items():
            print(f"  {name:15s} {seconds:7.2f} s  {rows / seconds:10.0f} rows/s")
        for name in ("keras", "keras + write"):
            print(f"  ours vs {name}: {medians[name] / medians['ours']:.2f}x")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
