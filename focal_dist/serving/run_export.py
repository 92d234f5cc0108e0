"""A finished run's export: what `<workdir>/export/` holds, written by the chief.

    export/model.keras        the trained Keras model (always)
    export/saved_model/       TF Serving's signatures: probabilities, decisions and logits
                              with the calibration and thresholds in the graph, or per-pixel
                              softmax and argmax for a task serving masks (segmentation)
    export/deploy.json        what the SavedModel decides and how it was chosen

Each file is replaced atomically (written beside, then renamed), so a kill never leaves
half of one.
"""

from __future__ import annotations

import os

from absl import logging

from focal_dist import atomic_files
from focal_dist.serving.example_spec import ExampleSpec
from focal_dist.serving.export import ExportWriteError, export_saved_model, write_deploy_json
from focal_dist.serving.mask_export import export_mask_model, write_mask_deploy_json
from focal_dist.workdir import WorkDir


def export_run(model, workdir: str, *, task, config, calibration=None, decision=None) -> None:
    """model.keras, then the SavedModel and deploy.json: per-pixel for a task serving masks
    (`task.serving_inputs()["masks"]`), else with `calibration` and `decision` (none
    without a calibration: the Decide action did not apply)."""
    export_keras(model, workdir)
    if task is not None and "masks" in task.serving_inputs():
        export_masks_for_serving(model, workdir, task=task, config=config)
    elif calibration is not None:
        export_for_serving(
            model, workdir, task=task, calibration=calibration, decision=decision, config=config
        )


def export_keras(model, workdir: str) -> str:
    """Saves `model` to <workdir>/export/model.keras (replacing any earlier export)."""
    path = WorkDir(workdir).model_keras
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    # Keras wants the .keras suffix; the rename makes the replacement atomic.
    temporary = os.path.join(directory, ".model.partial.keras")
    with atomic_files.no_space_as(ExportWriteError, path, temporary):
        model.save(temporary)
    os.replace(temporary, path)
    logging.info("exported %s", path)
    return path


def export_for_serving(model, workdir: str, *, task, calibration, decision, config) -> str:
    """<workdir>/export/saved_model (TF Serving's signatures, calibration and threshold in
    the graph) and export/deploy.json; returns the SavedModel's directory."""
    inputs = task.serving_inputs()
    image_options = inputs.get("image")
    example_spec = None
    if "vector_key" in inputs or "column_names" in inputs:
        example_spec = ExampleSpec(**{k: v for k, v in inputs.items() if k != "image"})
    directory = WorkDir(workdir).saved_model
    signatures = export_saved_model(
        model,
        calibration=calibration,
        thresholds=None if decision is None else decision.thresholds,
        directory=directory,
        features_spec=tuple(model.input_shape[1:]),
        example_spec=example_spec,
        image_options=image_options,
    )
    write_deploy_json(
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
    options = task.serving_inputs()["masks"]
    directory = WorkDir(workdir).saved_model
    signatures = export_mask_model(
        model, directory=directory, num_classes=task.num_outputs, mask_options=options
    )
    write_mask_deploy_json(
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
