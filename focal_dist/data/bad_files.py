"""Image files that cannot be decoded, found before training: refused or skipped
(`data.bad_files`).

The pass before training (image_folder's image check, segmentation's pixel histogram)
reads every image once and decodes it with the decoder training uses
(`images.decode_uint8`), so a truncated file, text named `.png` or an empty `.jpg`
fails there, not at the step whose shuffle reaches it. tf.data's `ignore_errors` drops
a failing image from the pass (a mask's own checks still stop it, named); the bad
files are the indices missing from what the pass returns, so a clean data set pays
for no message. Each bad file's reason is read again from that file alone (`reason`).

They are counted as `data.non_finite`'s rows are (data/skipped_rows.py): a `SkippedRows`
over every image of every split, one column ("image"), summed over workers with one
all-reduce, so that every worker knows every bad file. "error" then stops every worker
with the same message; "skip" removes the same files from every worker's listing
before it is sharded, so training, evaluation and the class weights never see them
and N replicas still train as one device does.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from focal_dist.data import images
from focal_dist.data.files import DataError
from focal_dist.data.skipped_rows import SkippedRows

# data.bad_files: stop before training, naming each bad file, or leave them out.
BAD_FILES = ("error", "skip")
COLUMNS = ("image",)
NAMED = 10  # bad files named in the log, summary.json and TensorBoard
_BATCH = 4096  # pass results fetched per batch: a Python step per 4096 images, not per image


@dataclasses.dataclass(frozen=True)
class FileCheck:
    """What the pass before training found in this pipeline's shards.

    Attributes:
      undecodable: every image of every split (their files, in listing order, the same on
        every worker), with 1 for each of this pipeline's images that failed.
      label_counts: int64 [C + 1] of this pipeline's training examples that decoded:
        valid pixels per class, then all of them (segmentation); None when the labels are
        counted elsewhere (image_folder: from the listing).
    """

    undecodable: SkippedRows
    label_counts: np.ndarray | None = None


def run_pass(
    records: tf.data.Dataset,
    decode: Callable,
    *,
    count: Callable | None = None,
    width: int = 0,
    drop_undecodable: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(int64 indices of the records whose image decoded, int64 [width] summed counts).

    Args:
      records: `(index, *record)`: the index of the record's image in its listing.
      decode: `*record -> int32 [2]`, the image's (height, width) from its decoded pixels
        (not from its header: a body cut short must fail here).
      count: `(size, *record) -> int64 [width]` of a record whose image decoded (a mask's
        checks and its pixel counts); its errors stop the pass. None: nothing counted.
      width: the length of `count`'s vector.
      drop_undecodable: drop a record whose `decode` fails; False: its error stops the
        pass (records that are not files of their own: TFRecords).
    """

    def decoded(index, *record):
        return (index, decode(*record), *record)

    pairs = records.map(decoded, num_parallel_calls=tf.data.AUTOTUNE)
    if drop_undecodable:
        pairs = pairs.ignore_errors()
    if count is not None:
        pairs = pairs.map(
            lambda index, size, *record: (index, count(size, *record)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:  # the size is kept as the result, so that no decode is pruned
        pairs = pairs.map(lambda index, size, *record: (index, size))
    kept, totals = [], np.zeros([width], np.int64)
    for indices, values in pairs.batch(_BATCH).as_numpy_iterator():
        kept.append(indices)
        if count is not None:
            totals += values.sum(axis=0)
    return np.concatenate(kept or [np.zeros([0], np.int64)]), totals


def undecodable(files: Sequence[str], shard: Sequence[int], kept: np.ndarray) -> SkippedRows:
    """The SkippedRows over `files` of one pipeline: 1 for each index of its `shard` that
    is not `kept`."""
    counts = np.zeros([len(files), len(COLUMNS) + 1], np.int64)
    bad = np.setdiff1d(np.asarray(shard, np.int64), kept)
    counts[bad] = 1
    return SkippedRows(tuple(files), COLUMNS, counts)


def joined(parts: Sequence[SkippedRows]) -> SkippedRows:
    """One SkippedRows of several splits' (their files one after the other)."""
    return SkippedRows(
        tuple(f for part in parts for f in part.files),
        COLUMNS,
        np.concatenate([part.counts for part in parts]).reshape(-1, len(COLUMNS) + 1),
    )


def bad_names(skipped: SkippedRows) -> list[str]:
    """The files with something skipped, in listing order."""
    return [f for f, n in zip(skipped.files, skipped.rows, strict=True) if n]


def reason(path: str, channels: int) -> str:
    """Why the image at `path` cannot be decoded: the decoder's own words, one line."""
    try:
        encoded = tf.io.read_file(path)
        if not len(encoded.numpy()):
            return "the file is empty (0 bytes)"
        images.decode_uint8(encoded, channels)
    except tf.errors.OpError as error:
        return error_text(error.message)
    return "failed in the pass before training, but decodes when read again"


def error_text(message: str) -> str:
    """An eager op error or tf.debugging.Assert as one line, without TensorFlow's
    decorations (`{{function_node ...}}`, `[Op:...]`)."""
    if "Summarized data:" in message:
        items = message.split("Summarized data:", 1)[1].strip().splitlines()
        text = " ".join(i[2:-1] if i[:2] in ("b'", 'b"') else i for i in items)
        return text.lstrip(": ")
    line = message.strip().splitlines()[0] if message.strip() else message
    return re.sub(r"\{\{[^}]*\}\}|\[Op:.*$", "", line).strip()


@dataclasses.dataclass(frozen=True)
class BadFiles:
    """The images of every worker that cannot be decoded, and why the first NAMED cannot.

    Attributes:
      skipped: every image of every split, with 1 for each bad one (summed over workers).
      reasons: {file: the decoder's reason} of the first NAMED bad files.
    """

    skipped: SkippedRows
    reasons: dict[str, str]

    @property
    def count(self) -> int:
        return self.skipped.num_rows

    @property
    def files(self) -> list[str]:
        return bad_names(self.skipped)

    def _named(self, separator: str, item: str) -> str:
        more = self.count - len(self.reasons)
        text = separator.join(item.format(f, why) for f, why in self.reasons.items())
        return text + (f"{separator}and {more} more" if more else "")

    def refusal(self) -> DataError:
        """data.bad_files = "error": one line naming them."""
        return DataError(
            f"{self.count} image file(s) cannot be decoded: {self._named('; ', '{}: {}')}; "
            "fix or remove them, or set --config.data.bad_files=skip to train without them"
        )

    def log_line(self) -> str:
        return (
            f"data.bad_files = skip: {self.count} image file(s) cannot be decoded and are left "
            f"out of training and evaluation: {self._named('; ', '{} ({})')}"
        )

    def to_dict(self) -> dict:
        """summary.json's `data.skipped_files`: {"files": n, "first": {file: reason}}."""
        return {"files": self.count, "first": dict(self.reasons)}

    def table(self) -> list[list]:
        """TensorBoard's rows: [file, reason] of the first NAMED, then how many more."""
        more = self.count - len(self.reasons)
        return [[f, why] for f, why in self.reasons.items()] + (
            [[f"... and {more} more", ""]] if more else []
        )


def settle(
    local: SkippedRows,
    *,
    mode: str,
    channels: int,
    sum_across_workers: Callable[[tf.Tensor], tf.Tensor],
) -> BadFiles | None:
    """The bad files of every worker (one all-reduce), or None when there are none.

    Raises:
      DataError: with `mode` "error", naming the first NAMED bad files and their reasons;
        every worker raises the same one.
    """
    if mode not in BAD_FILES:
        raise DataError(f"data.bad_files must be one of {', '.join(BAD_FILES)}; got {mode!r}")
    skipped = local.summed(sum_across_workers)
    if not skipped.num_rows:
        return None
    found = BadFiles(skipped, {f: reason(f, channels) for f in bad_names(skipped)[:NAMED]})
    if mode == "error":
        raise found.refusal()
    return found


def check_source(
    source, info, *, mode: str, sum_across_workers: Callable[[tf.Tensor], tf.Tensor]
) -> tuple[FileCheck | None, BadFiles | None]:
    """`source.check_files(info)` (None: no image files), settled over every worker:
    refused with `mode` "error", or logged and left out of the source's splits."""
    checked = source.check_files(info)
    if checked is None:
        return None, None
    found = settle(
        checked.undecodable,
        mode=mode,
        channels=source.input_shape[-1],
        sum_across_workers=sum_across_workers,
    )
    if found is not None:
        logging.warning("%s", found.log_line())
        source.drop_files(set(found.files))
    return checked, found
