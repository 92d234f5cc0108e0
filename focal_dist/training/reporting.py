"""What a run reports: its TensorBoard run info, config.json, summary.json and export.

Only the chief writes. Files a user reads or a job controller checks are replaced
atomically (written beside, then renamed), so a kill never leaves half of one.
"""

from __future__ import annotations

import json
import os

from absl import logging
from ml_collections import config_dict

from focal_dist import atomic_files
from focal_dist.training.summaries import SummaryWriter, markdown_table
from focal_dist.workdir import WorkDir


def flat_config(config, backend, data_fields=None) -> dict:
    """The config as {"a.b": value} (scalars kept, others as strings), for hparams.

    With `data_fields`, only those `data.*` fields (the ones the run's source reads).
    """
    flat = {}

    def flatten(prefix, node):
        for key, value in node.items():
            if prefix == "data." and data_fields is not None and key not in data_fields:
                continue
            if isinstance(value, config_dict.ConfigDict):
                flatten(f"{prefix}{key}.", value)
            elif isinstance(value, (bool, int, float, str)):
                flat[f"{prefix}{key}"] = value
            else:
                flat[f"{prefix}{key}"] = str(value)

    flatten("", config)
    flat["distribution"] = backend.name
    flat["num_replicas"] = backend.num_replicas_in_sync
    return flat


def write_run_info(summaries: SummaryWriter, config, backend, task) -> None:
    """Hparams and the task's table (the label histogram): once per run, at its start."""
    summaries.hparams(flat_config(config, backend, getattr(task, "data_fields", None)))
    reports = task.report()
    for report in reports if isinstance(reports, list) else [reports]:
        if report is not None:
            summaries.text(report.name, markdown_table(report.header, report.rows))


def write_segments(summaries: SummaryWriter, segments: list[dict], step: int) -> None:
    """The run's segments so far as a TensorBoard text table (at each process's start)."""
    header = ["segment", "from step", "to step", "saved", "ended", "config changes"]
    rows = [
        [
            number,
            segment["start_step"],
            segment.get("end_step", ""),
            segment.get("saved_step", ""),
            segment["ended"] if "end_step" in segment or number < len(segments) else "running",
            "; ".join(f"{f}: {a!r} -> {b!r}" for f, (a, b) in segment["config_changes"].items()),
        ]
        for number, segment in enumerate(segments, 1)
    ]
    summaries.text("run/segments", markdown_table(header, rows), step=step)


def run_summary(config, backend, step, step_losses, resumed_from, eval_metrics, preempted):
    """summary.json: `complete` once train.steps are done; a preempted run's is not.

    `train_losses` holds every step's loss from step 1, across restarts.
    """
    return {
        "step": step,
        "complete": not preempted,
        "preempted": preempted,
        "train_loss": step_losses[-1] if step_losses else None,
        "train_losses": step_losses,
        "resumed_from_step": resumed_from,
        "eval": eval_metrics,
        "num_replicas": backend.num_replicas_in_sync,
        "distribution": backend.name,
        "config": json.loads(config.to_json()),
    }


def write_config(workdir: str, config) -> str:
    """<workdir>/config.json: the config this process trains with, written at its start."""
    return atomic_files.write_json(WorkDir(workdir).config, json.loads(config.to_json()))


def read_summary(workdir: str) -> dict | None:
    """summary.json of `workdir`, or None if absent or unreadable."""
    try:
        with open(WorkDir(workdir).summary) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def write_summary(workdir: str, summary: dict) -> str:
    return atomic_files.write_json(WorkDir(workdir).summary, summary)


def export(model, workdir: str) -> str:
    """Saves `model` to <workdir>/export/model.keras (replacing any earlier export)."""
    path = WorkDir(workdir).model_keras
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    # Keras wants the .keras suffix; the rename makes the replacement atomic.
    temporary = os.path.join(directory, ".model.partial.keras")
    from focal_dist.serving.export import ExportWriteError

    with atomic_files.no_space_as(ExportWriteError, path, temporary):
        model.save(temporary)
    os.replace(temporary, path)
    logging.info("exported %s", path)
    return path


def export_for_serving(model, workdir: str, *, task, calibration, decision, config) -> str:
    """<workdir>/export/saved_model (TF Serving's signatures, calibration and threshold in
    the graph) and export/deploy.json; returns the SavedModel's directory."""
    from focal_dist import serving

    inputs = task.serving_inputs()
    image_options = inputs.get("image")
    example_spec = None
    if "vector_key" in inputs or "column_names" in inputs:
        example_spec = serving.ExampleSpec(**{k: v for k, v in inputs.items() if k != "image"})
    directory = WorkDir(workdir).saved_model
    signatures = serving.export_saved_model(
        model,
        calibration=calibration,
        thresholds=None if decision is None else decision.thresholds,
        directory=directory,
        features_spec=tuple(model.input_shape[1:]),
        example_spec=example_spec,
        image_options=image_options,
    )
    serving.write_deploy_json(
        WorkDir(workdir).export,
        calibration=calibration,
        decision=decision,
        class_names=task.class_names,
        config=config,
        signatures=signatures,
    )
    logging.info("exported %s for serving (signatures %s)", directory, ", ".join(signatures))
    return directory


def export_masks_for_serving(model, workdir: str, *, task, config) -> str:
    """<workdir>/export/saved_model of a per-pixel model (softmax and argmax per pixel, no
    calibration) and export/deploy.json; returns the SavedModel's directory."""
    from focal_dist import serving

    options = task.serving_inputs()["masks"]
    directory = WorkDir(workdir).saved_model
    signatures = serving.export_mask_model(
        model, directory=directory, num_classes=task.num_outputs, mask_options=options
    )
    serving.write_mask_deploy_json(
        WorkDir(workdir).export,
        num_classes=task.num_outputs,
        input_shape=model.input_shape[1:],
        ignore_label=options.ignore_label,
        class_names=task.class_names,
        config=config,
        signatures=signatures,
    )
    logging.info("exported %s for serving (signatures %s)", directory, ", ".join(signatures))
    return directory
