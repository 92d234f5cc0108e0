"""Row ranges of Parquet files as NumPy arrays, read with pyarrow.

`read_ranges` streams one file's row groups through `ParquetFile.iter_batches` (only the
columns asked for, only the row groups that hold a wanted row) and cuts the ranges out
of the stream. What is held at a time is one range's arrays, one record batch and
pyarrow's read buffer, whatever the size of the file or of its row groups. Rows
between the ranges are decoded and dropped: Parquet cannot start a read inside a row
group.

pyarrow is imported on first use: it is the `parquet` extra of the package.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence

import numpy as np

from focal_dist.data.files import DataError

# Bytes pyarrow reads at a time from a column chunk: pages stream through this buffer,
# so a row group is never held whole, compressed or not.
_READ_BUFFER = 1 << 20


def pyarrow_parquet():
    """`pyarrow.parquet`, or a DataError saying how to install it."""
    try:
        import pyarrow.parquet as pq
    except ImportError as error:
        raise DataError(
            "data.source=parquet reads Parquet files with pyarrow, which is not installed "
            f"({error}); install it with: pip install 'focal-dist[parquet]'"
        ) from None
    return pq


class _TensorFlowFile(io.RawIOBase):
    """A `tf.io.gfile.GFile` as the seekable binary file pyarrow reads (GFile alone
    lacks `closed`)."""

    def __init__(self, path: str):
        import tensorflow as tf

        self._file = tf.io.gfile.GFile(path, "rb")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._file.seek(offset, whence)
        return self._file.tell()

    def tell(self) -> int:
        return self._file.tell()

    def readinto(self, buffer) -> int:
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


@contextlib.contextmanager
def open_file(path: str):
    """A `pyarrow.parquet.ParquetFile` of `path`; a URL (gs://, s3://, ram://, ...) is
    read through TensorFlow's file systems, as `list_files` found it."""
    pq = pyarrow_parquet()
    with contextlib.ExitStack() as stack:
        source = path
        if "://" in path:
            source = stack.enter_context(_TensorFlowFile(path))
        try:
            parquet_file = pq.ParquetFile(source, buffer_size=_READ_BUFFER, pre_buffer=False)
        except Exception as error:  # pyarrow's ArrowInvalid, OSError, ...
            raise DataError(f"Parquet file {path!r} cannot be read as Parquet: {error}") from None
        stack.callback(parquet_file.close)
        yield parquet_file


def is_numeric(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)


def schema(path: str) -> tuple[dict[str, object], int]:
    """({column: arrow type} in file order, number of rows) of one file."""
    with open_file(path) as parquet_file:
        arrow_schema = parquet_file.schema_arrow
        types = {name: arrow_schema.field(name).type for name in arrow_schema.names}
        return types, parquet_file.metadata.num_rows


def _batches(parquet_file, ranges, columns, batch_rows) -> Iterator[tuple[int, object]]:
    """(first row in the file, RecordBatch) over the row groups that hold a range's row."""
    metadata = parquet_file.metadata
    first_row = 0
    for group in range(metadata.num_row_groups):
        stop_row = first_row + metadata.row_group(group).num_rows
        if any(start < stop_row and first_row < stop for start, stop in ranges):
            row = first_row
            for batch in parquet_file.iter_batches(
                batch_size=batch_rows, row_groups=[group], columns=columns, use_threads=True
            ):
                yield row, batch
                row += batch.num_rows
        first_row = stop_row


def _matrix(path, parts, names, dtype, rows) -> np.ndarray:
    """[rows, len(names)] of `dtype` from the record batch slices `parts`, in order.

    A null reads as NaN; in an integer array (labels) it is refused, naming the row.
    """
    out = np.empty((rows, len(names)), dtype)
    filled = 0
    for first_row, part in parts:
        for k, name in enumerate(names):
            column = part.column(name)
            if column.null_count and not np.issubdtype(dtype, np.floating):
                row = first_row + int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))
                raise DataError(
                    f"bad data: Parquet file {path}, column {name}, row {row}: labels of an "
                    f"integer column ({column.type}) must not be null, got null"
                )
            out[filled : filled + len(part), k] = column.to_numpy(zero_copy_only=False)
        filled += len(part)
    return out


def read_ranges(
    path: str,
    ranges: Sequence[tuple[int, int]],
    *,
    labels: Sequence[str],
    label_dtype,
    features: Sequence[str],
    batch_rows: int,
) -> Iterator[dict[str, np.ndarray]]:
    """For each row range `[start, stop)` of `path` (ascending, disjoint), in order:
    `{"start": int64, "labels": [n] or [n, C] label_dtype, "features": float32 [n, K]}`
    (without `labels` or `features` when none are asked for).

    Rows are counted from 0 in the file. At most `batch_rows` rows are decoded at a time.
    """
    ranges = [(int(start), int(stop)) for start, stop in ranges]
    columns = list(dict.fromkeys([*labels, *features]))
    with open_file(path) as parquet_file:
        parts, k = [], 0
        for first_row, batch in _batches(parquet_file, ranges, columns, batch_rows):
            last_row = first_row + batch.num_rows
            while k < len(ranges) and ranges[k][0] < last_row:
                start, stop = ranges[k]
                low, high = max(start, first_row), min(stop, last_row)
                if low < high:
                    parts.append((low, batch.slice(low - first_row, high - low)))
                if stop > last_row:
                    break  # the range goes on in the next batch
                chunk = {"start": np.int64(start)}
                if labels:
                    chunk["labels"] = _matrix(path, parts, labels, label_dtype, stop - start)
                    if len(labels) == 1:
                        chunk["labels"] = chunk["labels"][:, 0]
                if features:
                    chunk["features"] = _matrix(path, parts, features, np.float32, stop - start)
                yield chunk
                parts, k = [], k + 1
    if k < len(ranges):
        raise DataError(
            f"Parquet file {path!r} ended before row {ranges[k][1] - 1}: it changed while "
            "it was read"
        )
