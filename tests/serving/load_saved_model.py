"""Loads SavedModels as TF Serving would see them: TensorFlow alone, no focal_dist, no Keras.

The test runs it with packages named keras, tf_keras and focal_dist that fail on import.

    python load_saved_model.py JOBS.json

Each job {"directory", "signature", "input": name, "values": path.npy | "b64": [...],
"output": path.npz} calls one signature and saves its outputs; the script then
writes {"modules": [...]} (focal_dist or keras if they were imported) beside JOBS.json.
"""

import base64
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf


def main() -> None:
    path = sys.argv[1]
    with open(path) as handle:
        jobs = json.load(handle)
    loaded = {}
    for job in jobs:
        directory = job["directory"]
        if directory not in loaded:
            loaded[directory] = tf.saved_model.load(directory)
        signature = loaded[directory].signatures[job["signature"]]
        if "b64" in job:
            values = tf.constant([base64.b64decode(v) for v in job["b64"]], tf.string)
        else:
            values = tf.constant(np.load(job["values"]))
        outputs = signature(**{job["input"]: values})
        np.savez(job["output"], **{name: value.numpy() for name, value in outputs.items()})
    imported = sorted(
        name for name in sys.modules if name.split(".")[0] in ("focal_dist", "keras", "tf_keras")
    )
    with open(path + ".modules.json", "w") as handle:
        json.dump({"modules": imported}, handle)


if __name__ == "__main__":
    main()
