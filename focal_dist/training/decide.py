"""From a trained model to a decision: the action after the last step, before export.

On every worker (each collective of `focal_dist.serving` sums over all of them):

    calibration = fit on the calibration split      (Platt per output; temperature + bias)
    threshold   = chosen on the calibration split   (decision.target; argmax for multiclass)
    reported    = on the eval split, never the calibration split: ECE, NLL and Brier
                  before and after calibration, precision/recall/F1 at the threshold

into summary.json (`calibration`, `decision`) and TensorBoard (scalars and reliability
diagrams), and handed to the Export action in the call result (`handoff`), which writes
them into the SavedModel and deploy.json.
Without a calibration split the model is exported uncalibrated, with a warning, and a
threshold is only taken from `decision.target = "threshold:T"` (else 0.5).
"""

from __future__ import annotations

import time

import numpy as np
from absl import logging

from focal_dist import serving
from focal_dist.training.controller import Action, CallResult

DECIDED_LABEL_MODES = ("binary", "multi_label", "sparse")


def deploy_positive_rate(value):
    """The config's `calibration.deploy_positive_rate`: () for none, else as given."""
    if value in ((), [], None, "", "none"):
        return None
    return list(value) if isinstance(value, (tuple, list)) else float(value)


class Decide(Action):
    """Calibrates and chooses the operating point once training has finished.

    `score(split)` returns this worker's (logits [n, C], labels) of "calibration" or
    "eval" (each example on one worker), or None when the task has no such split.
    """

    def __init__(self, *, score, task, config, backend, summaries, per_example=True):
        self.score = score
        self.per_example = per_example  # logits [B, C]; dense outputs are not decided here
        self.task = task
        self.config = config
        self.backend = backend
        self.summaries = summaries
        self.calibration: serving.Calibration | None = None
        self.decision: serving.Decision | None = None

    @property
    def applies(self) -> bool:
        return self.per_example and self.task.label_mode in DECIDED_LABEL_MODES

    def finish(self, result: CallResult) -> None:
        if not self.applies:
            return
        start = time.perf_counter()
        self._decide(result)
        logging.info("calibration and decision in %.2fs", time.perf_counter() - start)

    def _decide(self, result: CallResult) -> None:
        label_mode, outputs = self.task.label_mode, self.task.num_outputs
        settings = self.config.calibration
        method = settings.method
        rate = deploy_positive_rate(settings.deploy_positive_rate)
        target = self.config.decision.target
        held_out = self.score("calibration")
        if held_out is None or method == "none":
            if held_out is None and method != "none":
                logging.warning(
                    "no calibration split (data.calibration_path, data.synthetic.num_calibration "
                    "or the task's calibration examples): exporting uncalibrated probabilities"
                )
            self.calibration = serving.Calibration.identity(
                label_mode=label_mode, num_outputs=outputs
            )
        else:
            self.calibration = serving.fit_calibration(
                *_layout(held_out, label_mode, outputs),
                label_mode=label_mode,
                method=method,
                backend=self.backend,
                deploy_positive_rate=rate,
            )
        report = {"method": self.calibration.method, "parameters": self.calibration.to_dict()}
        self.decision = self._threshold(held_out, label_mode, target, outputs)
        evaluation = self.score("eval")
        decision_report = {"target": target}
        if evaluation is not None:
            logits, labels = _layout(evaluation, label_mode, outputs)
            report.update(self._reliability(logits, labels, label_mode, result.step))
            probabilities = self.calibration.apply_numpy(logits)
            if label_mode == "sparse":
                decision_report["eval"] = serving.evaluate_argmax(
                    probabilities, labels, backend=self.backend
                )
            else:
                at_eval = serving.evaluate_thresholds(
                    probabilities,
                    labels,
                    thresholds=self.decision.thresholds,
                    backend=self.backend,
                    target=self.decision.target,
                )
                decision_report["eval"] = at_eval.to_dict()
        if self.decision is not None:
            decision_report["calibration_split"] = self.decision.to_dict()
            decision_report["thresholds"] = [float(t) for t in self.decision.thresholds]
        result.extras["calibration"] = report
        result.extras["decision"] = decision_report
        result.handoff["calibration"] = self.calibration
        result.handoff["decision"] = self.decision

    def _threshold(self, held_out, label_mode, target, outputs):
        if label_mode == "sparse":
            return None  # argmax of the calibrated probabilities
        parsed = serving.parse_target(target)
        if held_out is None:
            # Nothing to choose on (the eval split only reports): a fixed threshold.
            fixed = parsed.value if parsed.kind == "threshold" else 0.5
            logging.warning("no calibration split: the decision threshold is %s", fixed)
            point = serving.OperatingPoint(fixed, 0.0, 0.0, 0.0, 0, 0, 0, 0)
            return serving.Decision(f"threshold:{fixed}", (point,) * outputs)
        logits, labels = _layout(held_out, label_mode, outputs)
        return serving.choose_threshold(
            self.calibration.apply_numpy(logits),
            labels,
            target=target,
            backend=self.backend,
            prevalence_weights=self.calibration.prevalence_weights(),
        )

    def _reliability(self, logits, labels, label_mode, step) -> dict:
        """ECE, NLL, Brier before and after calibration, on the eval split."""
        report = {}
        for when, scores in (("before", logits), ("after", self.calibration.logits_numpy(logits))):
            metrics = serving.calibration_metrics(
                scores, labels, label_mode=label_mode, backend=self.backend
            )
            report[when] = metrics.to_dict()
            self.summaries.scalars(metrics.scalars(), step, prefix=f"calibration/{when}/")
            for output in range(min(self.task.num_outputs, 8) if label_mode != "sparse" else 1):
                suffix = (
                    ""
                    if self.task.num_outputs == 1 or label_mode == "sparse"
                    else f"/class_{output}"
                )
                self.summaries.image(
                    f"calibration/reliability_{when}{suffix}",
                    metrics.diagram(output),
                    step,
                    description="eval split, 15 bins: mean probability vs positive rate",
                )
        return report


def _layout(held_out, label_mode, outputs):
    """(logits [n, C], labels in the serving functions' layout: [n, C] 0/1 or [n] ids)."""
    logits, labels = held_out
    logits = np.asarray(logits, np.float32).reshape(-1, outputs)
    labels = np.asarray(labels)
    if label_mode == "sparse":
        return logits, labels.reshape(-1).astype(np.int64)
    return logits, labels.reshape(-1, outputs).astype(np.float32)
