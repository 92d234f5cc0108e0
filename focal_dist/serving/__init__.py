"""After training: calibration, metrics of calibration, the decision threshold, export.

    calibration = fit_calibration(logits, labels, label_mode="binary", backend=backend)
    decision = choose_threshold(calibration.apply_numpy(logits), labels, target="f1",
                                backend=backend)
    export_saved_model(model, calibration=calibration, thresholds=decision.thresholds,
                       directory="export/saved_model", features_spec=(32,))

Every function that takes `backend` is exact over workers: each worker passes its own
examples of the split (every example on exactly one worker, any count, 0 included) and
gets the same result as one process given the whole split. Per-pixel (segmentation)
models are exported uncalibrated by `export_mask_model` (serving/mask_export.py).
"""

from focal_dist.serving.calibration import METHODS, Calibration, fit_calibration
from focal_dist.serving.diagram import reliability_diagram
from focal_dist.serving.evaluation import evaluate_argmax, evaluate_thresholds
from focal_dist.serving.example_spec import ExampleSpec
from focal_dist.serving.export import export_saved_model, write_deploy_json
from focal_dist.serving.mask_export import export_mask_model, write_mask_deploy_json
from focal_dist.serving.operating_point import Decision, OperatingPoint
from focal_dist.serving.reliability import NUM_BINS, CalibrationMetrics, calibration_metrics
from focal_dist.serving.targets import Target, parse_target
from focal_dist.serving.threshold import ThresholdError, choose_threshold

__all__ = [
    "METHODS",
    "NUM_BINS",
    "Calibration",
    "CalibrationMetrics",
    "Decision",
    "ExampleSpec",
    "OperatingPoint",
    "Target",
    "ThresholdError",
    "calibration_metrics",
    "choose_threshold",
    "evaluate_argmax",
    "evaluate_thresholds",
    "export_mask_model",
    "export_saved_model",
    "fit_calibration",
    "parse_target",
    "reliability_diagram",
    "write_deploy_json",
    "write_mask_deploy_json",
]
