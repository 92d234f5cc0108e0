"""Calibration on held-out data: ECE before and after, ours next to scikit-learn's Platt.

Two data sets, each with separate train, calibration and eval splits:

    default  the `make run` config (synthetic, 1% positives, focal loss, auto class weights)
    digits   scikit-learn's bundled digits, "is it a 9" (10% positives), as CSV files

For each: the raw model's ECE (15 equal-width bins), NLL and Brier on the eval split,
after our calibration (fitted by the run on the calibration split), after
scikit-learn's Platt scaling fitted on the same calibration logits
(`CalibratedClassifierCV(FrozenEstimator, method="sigmoid")` on a one-feature logit
model), and, on digits, scikit-learn's own balanced logistic regression with Platt
scaling. Also what calibration and the threshold cost: the Decide action's seconds
against the whole run's.

    .venv/bin/python bench/calibration_table.py [--steps=1500]
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import app, flags

ROOT = Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 1500, "Training steps of the default run.")


def ece(probabilities, labels, bins=15):
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    return sum(
        (index == b).mean() * abs(probabilities[index == b].mean() - labels[index == b].mean())
        for b in range(bins)
        if (index == b).any()
    )


def scores(probabilities, labels):
    p = np.clip(probabilities, 1e-12, 1 - 1e-12)
    nll = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    return ece(probabilities, labels), nll, np.mean((probabilities - labels) ** 2)


def _run(workdir, overrides, config="configs/default.py"):
    flags_ = [f"--config.{k}={v}" for k, v in overrides.items()]
    command = [
        sys.executable, "-m", "focal_dist.train", f"--config={ROOT / config}",
        f"--workdir={workdir}", *flags_,
    ]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    decided = re.search(r"calibration and decision in ([\d.]+)s", result.stderr)
    return seconds, float(decided.group(1)) if decided else float("nan")


def _logits(workdir, x):
    import keras

    model = keras.models.load_model(Path(workdir) / "export" / "model.keras", compile=False)
    return model.predict(x, verbose=0)[:, 0].astype(np.float64)


def _sklearn_platt(cal_logits, cal_labels, eval_logits):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression

    # A "model" that is the logit itself: identity weights, so Platt is what is fitted.
    identity = LogisticRegression().fit([[-1.0], [1.0]], [0, 1])
    identity.coef_, identity.intercept_ = np.array([[1.0]]), np.array([0.0])
    platt = CalibratedClassifierCV(FrozenEstimator(identity), method="sigmoid")
    platt.fit(cal_logits[:, None], cal_labels)
    return platt.predict_proba(eval_logits[:, None])[:, 1]


def _row(name, probabilities, labels):
    e, nll, brier = scores(probabilities, labels)
    return f"| {name} | {e:.4f} | {nll:.4f} | {brier:.4f} | {probabilities.mean():.4f} |"


def _table(title, labels, rows):
    print(f"\n{title}: eval positive rate {labels.mean():.4f}")
    print("| model | ECE | NLL | Brier | mean probability |\n|---|---|---|---|---|")
    for name, probabilities in rows:
        print(_row(name, probabilities, labels))


def default_run(directory):
    import tensorflow as tf

    from focal_dist.data.synthetic import SyntheticData

    workdir = directory / "default"
    seconds, decided = _run(workdir, {"train.steps": FLAGS.steps})
    summary = json.loads((workdir / "summary.json").read_text())
    parameters = summary["calibration"]["parameters"]
    data = SyntheticData(num_features=32, positive_rate=0.01)
    split = {"eval": (65536, 32768), "calibration": (65536 + 32768, 16384)}
    arrays = {}
    for name, (start, count) in split.items():
        x, y = data.examples(tf.range(start, start + count, dtype=tf.int64))
        arrays[name] = (_logits(workdir, x.numpy()), y.numpy()[:, 0])
    (cal_z, cal_y), (eval_z, eval_y) = arrays["calibration"], arrays["eval"]
    a, b = parameters["scale"][0], parameters["offset"][0]
    _table(
        f"default run ({FLAGS.steps} steps)",
        eval_y,
        [
            ("raw model", 1 / (1 + np.exp(-eval_z))),
            ("ours: Platt on the calibration split", 1 / (1 + np.exp(-(a * eval_z + b)))),
            ("scikit-learn Platt, same calibration logits", _sklearn_platt(cal_z, cal_y, eval_z)),
        ],
    )
    print(f"calibration and decision: {decided:.2f} s of a {seconds:.1f} s run "
          f"({100 * decided / seconds:.2f}%)")  # fmt: skip


def digits_run(directory):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    x, y = (x / 16.0).astype(np.float32), (y == 9).astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    parts = np.split(order, [len(y) // 2, 3 * len(y) // 4])  # train, calibration, eval
    header = ",".join(["label", *(f"p{i}" for i in range(64))])
    paths = {}
    for name, rows in zip(("train", "calibration", "eval"), parts, strict=True):
        paths[name] = directory / f"digits-{name}.csv"
        np.savetxt(paths[name], np.concatenate([y[rows, None], x[rows]], axis=1), delimiter=",",
                   header=header, comments="", fmt=["%d", *["%.6f"] * 64])  # fmt: skip
    workdir = directory / "digits"
    overrides = {
        "data.path": paths["train"],
        "data.calibration_path": paths["calibration"],
        "data.eval_path": paths["eval"],
        "train.steps": 600,
        "train.global_batch_size": 64,
        "train.eval_every": 0,
    }
    _run(workdir, overrides, config="configs/csv.py")
    summary = json.loads((workdir / "summary.json").read_text())
    a = summary["calibration"]["parameters"]["scale"][0]
    b = summary["calibration"]["parameters"]["offset"][0]
    (tr, cal, ev) = parts
    eval_z, cal_z = _logits(workdir, x[ev]), _logits(workdir, x[cal])
    balanced = LogisticRegression(class_weight="balanced", max_iter=2000).fit(x[tr], y[tr])
    from sklearn.frozen import FrozenEstimator

    lr_platt = CalibratedClassifierCV(FrozenEstimator(balanced), method="sigmoid")
    lr_platt.fit(x[cal], y[cal])
    _table(
        "digits, is it a 9",
        y[ev].astype(np.float64),
        [
            ("ours raw (focal, auto class weights)", 1 / (1 + np.exp(-eval_z))),
            ("ours calibrated", 1 / (1 + np.exp(-(a * eval_z + b)))),
            ("scikit-learn Platt on our calibration logits", _sklearn_platt(cal_z, y[cal], eval_z)),
            ("scikit-learn balanced LR, raw", balanced.predict_proba(x[ev])[:, 1]),
            ("scikit-learn balanced LR + Platt", lr_platt.predict_proba(x[ev])[:, 1]),
        ],
    )


def main(argv):
    del argv
    directory = Path(tempfile.mkdtemp(prefix="calibration_bench_"))
    try:
        default_run(directory)
        digits_run(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
