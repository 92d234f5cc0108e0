"""The work dir's layout, in one place: where a training run writes each thing and where
serving reads it back. Training, resuming, exporting and batch prediction all name
their files through `WorkDir`, so a file moves by changing one line here.

    <workdir>/config.json        the config of the latest segment (run_record.py)
    <workdir>/segments.jsonl     one start and one end line per segment
    <workdir>/summary.json       the run's result, rewritten at each end of a segment
    <workdir>/checkpoints/       ckpt-<step>.{index,data-*} (checkpoints.py)
    <workdir>/tensorboard/       event files
    <workdir>/export/model.keras, deploy.json, saved_model/   what serving reads
"""

from __future__ import annotations

import dataclasses
import os


@dataclasses.dataclass(frozen=True)
class WorkDir:
    """The paths of one work dir (nothing is read or created here)."""

    root: str

    def _path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def config(self) -> str:
        return self._path("config.json")

    @property
    def segments(self) -> str:
        return self._path("segments.jsonl")

    @property
    def summary(self) -> str:
        return self._path("summary.json")

    @property
    def checkpoints(self) -> str:
        return self._path("checkpoints")

    @property
    def tensorboard(self) -> str:
        return self._path("tensorboard")

    @property
    def export(self) -> str:
        return self._path("export")

    @property
    def model_keras(self) -> str:
        return self._path("export", "model.keras")

    @property
    def saved_model(self) -> str:
        return self._path("export", "saved_model")

    @property
    def deploy_json(self) -> str:
        return self._path("export", DEPLOY_JSON)

    def worker_scratch(self, worker_index: int) -> str:
        """Where a non-chief worker's collective checkpoint save writes (then emptied)."""
        return self._path(f".worker_{worker_index}")


# deploy.json's name inside any export directory (the SavedModel's serving contract).
DEPLOY_JSON = "deploy.json"
