"""The rows `data.non_finite = "skip"` drops, counted per file and column.

Each input pipeline counts its own shard (every row of the split once over all
pipelines), so the counts of all pipelines add up to the split's: a fixed-shape int64
array, the same files and columns on every worker, summed with one all-reduce.
A row's fate depends on its values alone, so every pass over the data (training, the
label histogram, a resumed run) drops the same rows that are counted here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class SkippedRows:
    """Bad values and dropped rows of one split, per file and column.

    Attributes:
      files: every file of the split, in reading order (the same on every worker).
      columns: the label columns, then the feature columns, as errors name them.
      counts: int64 [len(files), len(columns) + 1]: the bad values of each column, then
        the rows dropped (a row with two bad values is dropped once).
    """

    files: tuple[str, ...]
    columns: tuple[str, ...]
    counts: np.ndarray

    @property
    def rows(self) -> np.ndarray:
        """int64 [len(files)]: rows dropped per file."""
        return self.counts[:, -1]

    @property
    def num_rows(self) -> int:
        return int(self.rows.sum())

    def summed(self, sum_across_workers: Callable[[tf.Tensor], tf.Tensor]) -> SkippedRows:
        """The counts over all workers, e.g. `skipped.summed(backend.sum_across_workers)`."""
        total = sum_across_workers(tf.constant(self.counts, tf.int64))
        return dataclasses.replace(self, counts=np.asarray(total, np.int64))

    def to_dict(self) -> dict:
        """{"rows": n, "files": {file: {"rows": n, "columns": {column: bad values}}}},
        for summary.json: only files and columns with something dropped."""
        files = {}
        for name, row in zip(self.files, self.counts, strict=True):
            if row[-1]:
                columns = {c: int(n) for c, n in zip(self.columns, row[:-1], strict=True) if n}
                files[name] = {"rows": int(row[-1]), "columns": columns}
        return {"rows": self.num_rows, "files": files}


def count(batches: tf.data.Dataset, files: Sequence[str], columns: Sequence[str]) -> SkippedRows:
    """Sums a reader's `count_skipped` batches (`{"file_index", "skipped"}`) by file."""

    def add(total, batch):
        return tf.tensor_scatter_nd_add(total, [[batch["file_index"]]], [batch["skipped"]])

    # Eager `reduce`: one op that drains the dataset in C++ (as label_histogram does).
    total = batches.reduce(tf.zeros([len(files), len(columns) + 1], tf.int64), add)
    return SkippedRows(tuple(files), tuple(columns), total.numpy())
