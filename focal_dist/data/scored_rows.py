"""The rows an earlier attempt of a batch prediction scored, left out of a resumed one.

A prediction that died (a kill, a crash, inputs that failed) is rerun into the same
output; its committed part files say which `(file, row)` are scored already. Each
pipeline still takes its own shard of the whole input (as a first attempt would, with
the current number of pipelines) and leaves out the rows scored before: over all
pipelines, every row not scored yet is scored once, whatever the number of workers of
either attempt. Where a file is one row (an image), it is left out before it is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import tensorflow as tf


def _key(file: str, row: int) -> str:
    return f"{int(row)}:{file}"  # the row first: a file name may hold ":"


class ScoredRows:
    """A set of `(file, row)`: the file's path as the source lists it, the row's index in it."""

    def __init__(self, rows: Iterable[tuple[str, int]] = ()):
        self._keys = frozenset(_key(file, row) for file, row in rows)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, file_row: tuple[str, int]) -> bool:
        return _key(*file_row) in self._keys

    def unscored_files(self, files: Sequence[str]) -> list[str]:
        """`files` without those whose only row (row 0: one image per file) is scored."""
        return [file for file in files if _key(file, 0) not in self._keys]

    def unscored(self) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
        """A predicate `(file, row) -> bool` (scalars or vectors) for tf.data: True where
        the row is not scored. Build it outside the dataset's functions (it makes the
        lookup table once, here)."""
        if not self._keys:
            return lambda file, row: tf.ones_like(row, tf.bool)
        keys = tf.constant(sorted(self._keys), tf.string)
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, tf.ones_like(keys, tf.int64)),
            default_value=0,
        )

        def unscored(file, row):
            key = tf.strings.join([tf.strings.as_string(row), file], ":")
            return tf.equal(table.lookup(key), 0)

        return unscored

    def drop_scored(self, batches: tf.data.Dataset) -> tf.data.Dataset:
        """Batches of `{"file", "row", ...}` without their scored rows (a batch may end
        up short or empty)."""
        if not self._keys:
            return batches
        unscored = self.unscored()

        def drop(batch):
            keep = unscored(batch["file"], batch["row"])
            return {name: tf.boolean_mask(value, keep) for name, value in batch.items()}

        return batches.map(drop)
