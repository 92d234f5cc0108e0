"""Numbered checkpoints that a kill, a bad file or a divergence never make unusable.

A run's checkpoints live in `<workdir>/checkpoints`:

    ckpt-<step>.index, ckpt-<step>.data-*   written by `tf.train.Checkpoint.write`
    history.jsonl                           one line per checkpoint: its step, the
                                            training losses since the previous one,
                                            the evaluation done at that step
    checkpoint                              TensorFlow's state file (for other tools)
    rejected/, diverged/                    checkpoints moved aside, never deleted

Commit order of a save: data and index (TensorFlow writes them under `ckpt-<step>_temp`
and renames), then the history line (flushed and fsynced), then the state file
(written to a temporary file and renamed). A checkpoint counts only once its history
line exists, so a kill at any moment leaves the previous checkpoint intact and chosen.

Restore never trusts the state file: the chief lists every `ckpt-<step>` that has a file
(`.index` or a data shard), newest first, reads every tensor of each (size and checksum
checks) and takes the first that reads and is finite; those that do not (a missing
`.index` among them) are logged with their path, the error and the step used instead, and
moved to `rejected/`. Progress is never lost silently: when no checkpoint is usable but
the directory records trained steps (its history, or the checkpoints just rejected), the
run stops with `NoUsableCheckpointError` unless it was asked to restart from step 0.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import tensorflow as tf
from absl import logging

from focal_dist import atomic_files
from focal_dist.training.divergence import Record, diverged_checkpoints
from focal_dist.workdir import WorkDir

HISTORY = "history.jsonl"
STATE = "checkpoint"
_INDEX = re.compile(r"^ckpt-(\d+)\.index$")
_ANY_FILE = re.compile(r"^ckpt-(\d+)\.(index|data-\d+-of-\d+)$")


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk); the previous one is intact."""


class NoUsableCheckpointError(RuntimeError):
    """The work dir records trained steps, yet none of its checkpoints can be restored."""


class CheckpointMismatchError(ValueError):
    """A readable checkpoint does not fit the model and optimizer built from the config."""


class CheckpointStore:
    """Saves and restores `checkpoint` as `ckpt-<step>` in `directory`.

    Only the chief passes `writer=True`; other workers of a collective save
    (MultiWorkerMirrored) write to `scratch_directory`, which is emptied after each save.
    """

    def __init__(
        self,
        checkpoint: tf.train.Checkpoint,
        directory: str,
        *,
        keep: int,
        writer: bool,
        scratch_directory: str | None = None,
    ):
        if keep < 1:
            raise ValueError(f"train.keep_checkpoints must be >= 1, got {keep}")
        self.checkpoint = checkpoint
        self.directory = directory
        self.keep = keep
        self.writer = writer
        self.scratch_directory = scratch_directory

    @classmethod
    def for_backend(cls, checkpoint, workdir: str, backend, *, keep: int) -> CheckpointStore:
        """The store of `<workdir>/checkpoints` as `backend`'s worker uses it."""
        # Saving is collective under MultiWorkerMirrored: other workers write to a
        # scratch folder of their own, emptied after each save.
        scratch = WorkDir(workdir).worker_scratch(backend.worker_index)
        return cls(
            checkpoint,
            WorkDir(workdir).checkpoints,
            keep=keep,
            writer=backend.is_chief,
            scratch_directory=(
                scratch if backend.checkpoint_on_every_worker and not backend.is_chief else None
            ),
        )

    def remove_scratch(self) -> None:
        if self.scratch_directory:
            shutil.rmtree(self.scratch_directory, ignore_errors=True)

    # --- reading ----------------------------------------------------------------------
    def prefix(self, step: int) -> str:
        return os.path.join(self.directory, f"ckpt-{step}")

    def steps(self) -> list[int]:
        """Steps of the `ckpt-<step>.index` files present, ascending."""
        if not tf.io.gfile.isdir(self.directory):
            return []
        found = (_INDEX.match(name) for name in tf.io.gfile.listdir(self.directory))
        return sorted(int(match.group(1)) for match in found if match)

    def records(self) -> dict[int, Record]:
        """The history's records by step; unreadable lines (a kill mid-write) are skipped."""
        path = os.path.join(self.directory, HISTORY)
        if not tf.io.gfile.exists(path):
            return {}
        records = {}
        with tf.io.gfile.GFile(path) as handle:
            for number, line in enumerate(handle, 1):
                try:
                    data = json.loads(line)
                    record = Record(int(data["step"]), tuple(data["losses"]), data.get("eval"))
                except (ValueError, KeyError, TypeError):
                    logging.warning("%s line %d is not a record; ignored", path, number)
                    continue
                records[record.step] = record
        return records

    def history(self, step: int) -> list[Record]:
        """The records of steps <= `step`, in order."""
        return [r for s, r in sorted(self.records().items()) if s <= step]

    def _readable(self, step: int) -> Exception | str | None:
        """None if every tensor of ckpt-`step` reads back (sizes and checksums) and is
        finite, else why."""
        try:
            reader = tf.train.load_checkpoint(self.prefix(step))
            for name in reader.get_variable_to_shape_map():
                value = np.asarray(reader.get_tensor(name))
                if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
                    return f"{name} holds NaN or inf"
        except Exception as error:  # Any failure to read makes it unusable.
            return error
        return None

    def candidates(self) -> list[int]:
        """Steps with any checkpoint file (`.index` or a data shard), ascending: a step
        whose `.index` was lost is still seen, so that it is rejected by name."""
        if not tf.io.gfile.isdir(self.directory):
            return []
        found = (_ANY_FILE.match(name) for name in tf.io.gfile.listdir(self.directory))
        return sorted({int(match.group(1)) for match in found if match})

    def choose(self, *, restart: bool = False) -> int:
        """(chief) The newest usable checkpoint's step, 0 if none; moves bad ones aside.

        Usable: its `.index` exists, its tensors read back and, once a history exists, it
        has a record (one without was being saved when the run was killed).

        Raises:
          NoUsableCheckpointError: nothing is usable but the directory records progress
            (history records, or checkpoints rejected now) and `restart` is False.
        """
        self._remove_partial_writes()
        records = self.records()
        rejected: dict[int, str] = {}
        chosen = 0
        for step in reversed(self.candidates()):
            if not tf.io.gfile.exists(self.prefix(step) + ".index"):
                error = f"{self.prefix(step)}.index is missing"
            else:
                error = self._readable(step)
            if error is None and records and step not in records:
                error = f"no record in {HISTORY}: the run was killed while saving it"
            if error is None:
                chosen = step
                break
            lines = str(error).strip().splitlines()
            reason = (
                f"{type(error).__name__ if isinstance(error, Exception) else 'unusable'}: "
                f"{lines[0] if lines else ''}"
            )
            logging.warning(
                "checkpoint %s cannot be used (%s); moving it to %s",
                self.prefix(step),
                reason,
                os.path.join(self.directory, "rejected"),
            )
            self._move_aside([step], "rejected")
            rejected[step] = reason
        if rejected:
            self._write_state()
        if chosen and rejected:
            logging.warning(
                "rejected checkpoint steps %s; resuming from step %d (%s) instead",
                sorted(rejected),
                chosen,
                self.prefix(chosen),
            )
        if not chosen and (rejected or records):
            named = ", ".join(f"{self.prefix(s)} ({r})" for s, r in sorted(rejected.items()))
            found = f"checkpoints rejected: {named}" if rejected else "no checkpoint files"
            if not restart:
                raise NoUsableCheckpointError(
                    f"{self.directory} records training up to step {max([*records, *rejected])} "
                    f"but holds no usable checkpoint ({found}; moved aside to "
                    f"{os.path.join(self.directory, 'rejected')}, nothing deleted). Put the "
                    "missing files back and rerun, or rerun with --restart to train from step 0"
                )
            logging.warning(
                "--restart: no usable checkpoint in %s (%s); training from step 0",
                self.directory,
                found,
            )
        return chosen

    def restore(self, step: int) -> None:
        """Loads ckpt-`step` into the model and optimizer (every worker)."""
        path = self.prefix(step)
        if not tf.io.gfile.exists(path + ".index"):
            raise FileNotFoundError(
                f"checkpoint {path}, chosen by the chief, is not visible to this worker: every "
                "worker must see the same --workdir (one machine, or a shared volume)"
            )
        try:
            self.checkpoint.read(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise CheckpointMismatchError(
                f"checkpoint {path} does not fit the model and optimizer of this config "
                f"({type(error).__name__}: {str(error).strip()[:500]}); train with the config "
                "it was written with, or use a new --workdir"
            ) from error

    def commit_restore(self, step: int) -> None:
        """(chief) Makes the history and the state file describe a run at `step`."""
        kept = self.history(step)
        self._write_history(kept)
        self._write_state()

    # --- writing ----------------------------------------------------------------------
    def save(self, step: int, losses: list[float], eval_metrics: dict | None = None) -> str:
        """Writes ckpt-`step` with its record, then drops checkpoints beyond `keep`."""
        if not self.writer:
            if self.scratch_directory:
                # Saving is collective here: this worker writes too, then discards it.
                self.checkpoint.write(os.path.join(self.scratch_directory, "ckpt"))
                shutil.rmtree(self.scratch_directory, ignore_errors=True)
            return ""
        record = Record(step, tuple(float(v) for v in losses), eval_metrics)
        previous = self.steps()
        try:
            tf.io.gfile.makedirs(self.directory)
            path = self.checkpoint.write(self.prefix(step))
            atomic_files.append_line(os.path.join(self.directory, HISTORY), record.to_json())
        except (tf.errors.OpError, OSError) as error:
            if not atomic_files.is_disk_full(error):
                raise
            last = f"{self.prefix(previous[-1])}" if previous else "none (the run restarts)"
            raise CheckpointWriteError(
                f"no space left on the device of {self.directory} while saving checkpoint "
                f"{step}; the last good checkpoint is {last}. Free space (or use a --workdir "
                "on a larger volume) and rerun the same command: it resumes from it and "
                "removes the half-written one"
            ) from None
        stale = self.steps()[: -self.keep]
        for old in stale:
            for name in tf.io.gfile.glob(self.prefix(old) + ".*"):
                tf.io.gfile.remove(name)
        self._write_state()
        return path

    def quarantine_diverged(self, losses_after_last: list[float]) -> list[int]:
        """(chief) Moves the checkpoints written after the divergence began to diverged/."""
        present = set(self.steps())
        records = self.records()
        diverged = diverged_checkpoints(list(records.values()), losses_after_last)
        bad = [s for s in diverged if s in present]
        if bad:
            self._move_aside(bad, "diverged")
            # With no checkpoint left, a rerun starts from step 0 on purpose (what
            # after_divergence tells the user), so no history may claim progress.
            kept = [r for s, r in sorted(records.items()) if s < bad[0]] if self.steps() else []
            self._write_history(kept)
            self._write_state()
        return bad

    def after_divergence(self, losses_after_last: list[float]) -> str:
        """(chief) Quarantines diverged checkpoints; says what a rerun will do."""
        moved = self.quarantine_diverged(losses_after_last)
        remaining = self.steps()
        text = ""
        if moved:
            text = (
                f"Checkpoints written after the divergence began were moved to "
                f"{os.path.join(self.directory, 'diverged')}: steps {moved}. "
            )
        start = f"checkpoint {self.prefix(remaining[-1])}" if remaining else "the start"
        return text + (
            f"Rerunning resumes from {start}; to continue with a smaller learning rate, "
            "rerun the same command with --config.optimizer.learning_rate=<smaller> "
            "--allow_config_change=optimizer.learning_rate."
        )

    def _move_aside(self, steps: list[int], folder: str) -> None:
        target = os.path.join(self.directory, folder)
        tf.io.gfile.makedirs(target)
        for step in steps:
            for name in tf.io.gfile.glob(self.prefix(step) + ".*"):
                tf.io.gfile.rename(
                    name, os.path.join(target, os.path.basename(name)), overwrite=True
                )

    def _remove_partial_writes(self) -> None:
        # TensorFlow writes ckpt-<step>_temp/ and renames its files when done: a folder
        # left behind is a save that was killed.
        for name in tf.io.gfile.glob(os.path.join(self.directory, "ckpt-*_temp")):
            tf.io.gfile.rmtree(name)

    def _write_history(self, records: list[Record]) -> None:
        tf.io.gfile.makedirs(self.directory)
        atomic_files.write_text(
            os.path.join(self.directory, HISTORY), "".join(r.to_json() + "\n" for r in records)
        )

    def _write_state(self) -> None:
        steps = self.steps()
        path = os.path.join(self.directory, STATE)
        if not steps:
            if tf.io.gfile.exists(path):
                tf.io.gfile.remove(path)
            return
        lines = [f'model_checkpoint_path: "ckpt-{steps[-1]}"']
        lines += [f'all_model_checkpoint_paths: "ckpt-{s}"' for s in steps]
        atomic_files.write_text(path, "\n".join(lines) + "\n")
