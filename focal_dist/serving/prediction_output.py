"""The `--output` directory of a batch prediction: claimed by one prediction, resumed by
any rerun of it, refused to every other.

    DIR/prediction.start.json       what the prediction is, written first (by the chief):
                                    the model's fingerprint, the source and the sorted
                                    list of its input files
    DIR/part-<w>-of-<n>-<k>.csv     the k-th part of worker w of an attempt on n workers
                                    (the columns: serving/batch_predict.py), written
                                    beside and renamed into place whole, every
                                    `commit_seconds` and at the end
    DIR/failed-<w>-of-<n>.json      the rows worker w could not decode, with the reason
    DIR/prediction.json             written last (by the chief): the rows of every part
                                    and every failed row

The same prediction is the same model (export/deploy.json and model.keras, byte for
byte), the same source and the same input files, named as the first run named them
(`--data=new` and `--data=new/*` do; `./new` names `./new/a.png`, and is refused with
the spelling to use); the work dir's path, the backend and the number of workers may
differ. A rerun of it resumes: the
rows in committed parts are kept and left out of the new attempt (data/scored_rows.py),
everything else (rows a kill lost, rows that failed) is scored, each once over the new
workers. A rerun of a prediction that finished with failed rows retries them. Anything
else into DIR is refused before a row is scored, and so is a finished DIR without
failed rows: a rerun never mixes two predictions' rows.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import time

import numpy as np
from absl import logging

from focal_dist import atomic_files
from focal_dist.data.scored_rows import ScoredRows
from focal_dist.data.unreadable import ERROR
from focal_dist.workdir import WorkDir

MANIFEST = "prediction.json"
STARTED = "prediction.start.json"
# What a start record must match for a rerun to resume it; its other fields inform.
_SAME_PREDICTION = ("model_sha256", "source", "files")
_NAMES_SHOWN = 5


class OutputError(ValueError):
    """`--output` holds another prediction's results or a finished one's."""


def identity(*, workdir: str, data: str, source: str, files: list[str]) -> dict:
    """The start record of a prediction: what makes a rerun the same one, and where from."""
    digest = hashlib.sha256()
    for path in (WorkDir(workdir).deploy_json, WorkDir(workdir).model_keras):
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return {
        "model_sha256": digest.hexdigest(),
        "source": source,
        "files": sorted(files),
        "workdir": os.path.abspath(workdir),
        "data": data,
    }


def claim(directory: str, run: dict) -> bool:
    """Claims `directory` for `run` (an `identity`); True when it resumes an earlier
    attempt of the same prediction. OutputError for a finished prediction or another one.

    Called by the chief alone, before any worker writes: a resumed attempt starts by
    removing what the earlier one left that it rewrites (its manifest, its failure lists,
    half-written parts).
    """
    started, manifest = (os.path.join(directory, name) for name in (STARTED, MANIFEST))
    finished = _read_json(manifest)
    if finished is not None and not finished.get("failed"):
        raise OutputError(
            f"--output {directory!r} holds a finished prediction ({MANIFEST}); choose a new "
            "--output or remove it"
        )
    recorded = _read_json(started)
    if recorded is None:
        found = glob.glob(os.path.join(directory, "part-*")) + ([manifest] if finished else [])
        if found:
            raise OutputError(
                f"--output {directory!r} already holds results ({os.path.basename(found[0])}, "
                f"{len(found)} file(s)) of an unknown run; choose a new --output or remove them"
            )
        os.makedirs(directory, exist_ok=True)
        atomic_files.write_json(started, run)
        return False
    differences = _differences(recorded, run)
    if differences:
        raise OutputError(
            f"--output {directory!r} already holds results of another prediction "
            f"({differences}); choose a new --output: a rerun never mixes its rows with "
            "another run's"
        )
    stale = glob.glob(os.path.join(directory, "failed-*.json"))
    stale += glob.glob(os.path.join(directory, ".part-*.partial"))
    for path in [manifest, *stale] if finished else stale:
        os.remove(path)
    logging.info(
        "resuming the prediction in %s: rows in its part files are kept, the rest "
        "(failed rows included) is scored",
        directory,
    )
    return True


def _differences(recorded: dict, run: dict) -> str:
    """How `run` differs from the prediction `recorded`, in words; "" if it does not."""
    if any(key not in recorded for key in _SAME_PREDICTION):
        return "it was started by another version of focal_dist.predict"
    found = []
    if recorded["model_sha256"] != run["model_sha256"]:
        found.append(
            f"another model: {run['workdir']}/export differs from the one it started with "
            f"({recorded.get('workdir')})"
        )
    if recorded["source"] != run["source"]:
        found.append(f"another source: {run['source']}, not {recorded['source']}")
    if recorded["files"] != run["files"] and _same_files(recorded["files"], run["files"]):
        found.append(
            f"the same input files spelled another way: --data={run.get('data')} names "
            f"{run['files'][0]}, the prediction started with --data={recorded.get('data')} "
            f"({recorded['files'][0]}); rerun with --data={recorded.get('data')}"
        )
    elif recorded["files"] != run["files"]:
        old, new = set(recorded["files"]), set(run["files"])
        changes = [
            f"{len(names)} {what} ({_some(names)})"
            for what, names in (("added", sorted(new - old)), ("removed", sorted(old - new)))
            if names
        ]
        found.append(f"other input files: {', '.join(changes)}")
    return "; ".join(found)


def _same_files(recorded: list[str], given: list[str]) -> bool:
    """True when the two lists name the same files on disk (`new/a.png`, `./new/a.png`,
    `/abs/new/a.png`): rows are kept by the name a file was scored under, so the
    spelling must be the first run's."""
    return sorted(map(os.path.realpath, recorded)) == sorted(map(os.path.realpath, given))


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    return shown + (f" and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else "")


def _read_json(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def _part_name(worker: int, num_workers: int, sequence: int) -> str:
    return f"part-{worker:05d}-of-{num_workers:05d}-{sequence:05d}.csv"


def read_parts(directory: str) -> tuple[ScoredRows, dict[str, int]]:
    """(the rows of every committed part, {part file: its rows}) of `directory`."""
    scored, counts = [], {}
    for path in sorted(glob.glob(os.path.join(directory, "part-*.csv"))):
        with open(path, newline="") as handle:
            records = csv.reader(handle)
            next(records)  # the header
            rows = [(record[0], int(record[1])) for record in records]
        scored += rows
        counts[os.path.basename(path)] = len(rows)
    return ScoredRows(scored), counts


def read_failures(directory: str) -> list[dict]:
    """Every failed row the workers of the last attempt listed: {file, row, reason}."""
    failed = []
    for path in sorted(glob.glob(os.path.join(directory, "failed-*.json"))):
        failed += _read_json(path)
    return sorted(failed, key=lambda row: (row["file"], row["row"]))


def write_manifest(directory: str, document: dict) -> str:
    return atomic_files.write_json(os.path.join(directory, MANIFEST), document)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class PartWriter:
    """One worker's rows of one attempt, committed part by part.

    Rows go to a temporary file; `commit` renames it whole to the worker's next part
    file at the first batch `commit_seconds` or more after its first row, and at
    `close`, so a kill loses about that much of the worker's work. A row whose `"error"`
    is not empty (an input that could not be decoded) is listed as failed instead, in
    `failed-<w>-of-<n>.json` at `close`.
    """

    def __init__(
        self,
        directory: str,
        worker: int,
        num_workers: int,
        header: list[str],
        *,
        commit_seconds: float,
    ):
        self.directory, self.worker, self.num_workers = directory, worker, num_workers
        self.header = ["file", "row", *header]
        self.commit_seconds = commit_seconds
        self.rows = 0  # scored by this attempt of this worker
        self.failed: list[dict] = []
        self.parts: list[str] = []  # committed by this attempt of this worker
        prefix = os.path.join(directory, _part_name(worker, num_workers, 0)[: -len("00000.csv")])
        earlier = [int(path[len(prefix) : -len(".csv")]) for path in glob.glob(f"{prefix}*.csv")]
        self._sequence = max(earlier, default=-1) + 1
        self.temporary = os.path.join(directory, f".part-{worker:05d}-of-{num_workers:05d}.partial")
        self._open()

    def _open(self) -> None:
        # Open across many writes; `commit`, `close` or `abandon` closes it.
        self._handle = open(self.temporary, "w", newline="")  # noqa: SIM115
        # "\n" line ends, not the csv module's "\r\n": awk, cut and sort read the last
        # column as written.
        self._writer = csv.writer(self._handle, lineterminator="\n")
        self._writer.writerow(self.header)
        self._pending = 0
        self._since = time.monotonic()

    def add(self, outputs: dict) -> None:
        """One replica's batch as NumPy: `file`, `row`, the scorer's outputs and, from
        image sources, `error`."""
        errors = outputs.pop(ERROR, None)
        bad = None if errors is None else np.array([bool(error) for error in errors], bool)
        if bad is not None and bad.any():
            self.failed += [
                {"file": _text(file), "row": int(row), "reason": _text(error)}
                for file, row, error in zip(
                    outputs["file"][bad], outputs["row"][bad], errors[bad], strict=True
                )
            ]
            outputs = {name: value[~bad] for name, value in outputs.items()}
        if len(outputs["row"]):
            if not self._pending:
                self._since = time.monotonic()
            self.write(outputs)
            self._pending += len(outputs["row"])
            self.rows += len(outputs["row"])
        if self._pending and time.monotonic() - self._since >= self.commit_seconds:
            self.commit()

    def write(self, outputs: dict) -> None:
        """Writes one replica's rows, none failed (`add` has taken those out)."""
        raise NotImplementedError

    def commit(self) -> None:
        """Renames the rows written since the last commit into the next part file."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        path = os.path.join(
            self.directory, _part_name(self.worker, self.num_workers, self._sequence)
        )
        os.replace(self.temporary, path)
        self.parts.append(path)
        self._sequence += 1
        self._open()

    def close(self) -> list[str]:
        """Commits the last rows and writes the failure list; the parts this attempt wrote."""
        if self._pending:
            self.commit()
        self.abandon()
        if self.failed:
            atomic_files.write_json(
                os.path.join(
                    self.directory, f"failed-{self.worker:05d}-of-{self.num_workers:05d}.json"
                ),
                self.failed,
            )
        return self.parts

    def abandon(self) -> None:
        """Drops the rows not committed (the parts already committed stay)."""
        self._handle.close()
        if os.path.exists(self.temporary):
            os.remove(self.temporary)
