"""One worker of the distributed serving tests (run by horovodrun or launch/multiworker).

For each way of splitting the known splits over two workers (uneven; all on rank 1,
none on rank 0) it fits every calibration, chooses thresholds, measures ECE/NLL/Brier
and the eval metrics from its own shard alone, checks that one worker's bad arrays
make every worker raise (no hang), and writes what it got to <out>/rank<r>.json.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import numpy as np

from focal_dist import serving
from focal_dist.distribute import get_backend
from focal_dist.serving.evaluation import evaluate_argmax, evaluate_thresholds
from tests.serving import data

# Rows of each split per worker: [bounds[r], bounds[r + 1]).
SPLITS = {"uneven": [0, 2000, data.NUM_EXAMPLES], "empty_rank0": [0, 0, data.NUM_EXAMPLES]}
TARGETS = {
    "binary": ["f1", "recall:0.9", "precision:0.3", "cost:20"],
    "multi_label": ["f1", "recall:0.8", "cost:20"],
}
DEPLOY = {"binary": None, "multi_label": [0.01, 0.05, 0.2, 0.5], "sparse": [0.2] * 5}


def run_all(backend, shard) -> dict:
    """Everything the serving package computes over workers, from this worker's shard."""
    result = {}
    for label_mode, split in [
        ("binary", data.binary),
        ("multi_label", data.multi_label),
        ("sparse", data.sparse),
    ]:
        logits, labels = shard(split())
        calibration = serving.fit_calibration(
            logits,
            labels,
            label_mode=label_mode,
            backend=backend,
            deploy_positive_rate=DEPLOY[label_mode],
        )
        report = {"calibration": calibration.to_dict()}
        for name, values in (("before", logits), ("after", calibration.logits_numpy(logits))):
            metrics = serving.calibration_metrics(
                values, labels, label_mode=label_mode, backend=backend
            )
            report[f"metrics_{name}"] = metrics.to_dict()
        probabilities = calibration.apply_numpy(logits)
        if label_mode == "sparse":
            report["argmax"] = evaluate_argmax(probabilities, labels, backend=backend)
        else:
            for target in TARGETS[label_mode]:
                decision = serving.choose_threshold(
                    probabilities,
                    labels,
                    target=target,
                    backend=backend,
                    prevalence_weights=calibration.prevalence_weights(),
                )
                report[target] = decision.to_dict()
            at = evaluate_thresholds(
                probabilities, labels, thresholds=decision.thresholds, backend=backend
            )
            report["evaluated"] = at.to_dict()
        result[label_mode] = report
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--distribution", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    backend = get_backend(args.distribution)
    rank = backend.worker_index
    result = {"rank": rank, "num_workers": backend.num_workers}
    for name, bounds in SPLITS.items():
        result[name] = run_all(
            backend, lambda arrays, bounds=bounds: data.shard(arrays, bounds, rank)
        )
    # Rank 1's logits hold a NaN: both workers must raise, neither may wait forever.
    logits, labels = data.shard(data.binary(), SPLITS["uneven"], rank)
    if rank == 1:
        logits = logits.copy()
        logits[5, 0] = np.nan
    try:
        serving.fit_calibration(logits, labels, label_mode="binary", backend=backend)
        result["refused"] = ""
    except ValueError as error:
        result["refused"] = str(error)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"rank{rank}.json"), "w") as handle:
        json.dump(result, handle)
    print(f"rank {rank} done", flush=True)


if __name__ == "__main__":
    main()
