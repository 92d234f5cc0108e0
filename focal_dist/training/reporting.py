"""What a run reports: its TensorBoard run info, config.json and summary.json.

Only the chief writes. Files a user reads or a job controller checks are replaced
atomically (written beside, then renamed), so a kill never leaves half of one.
"""

from __future__ import annotations

import json

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
