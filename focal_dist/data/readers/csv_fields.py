"""Every row of a CSV file has as many fields as its header: checked before any read.

TensorFlow's CsvDataset stops at a short or long row with `Expect 5 fields but have 4 in
record`, naming neither file nor line, and only when the read reaches it. This check runs
when a reader is built, so the file, line and both counts are named before anything is
written.

Cost: a file without quotes is checked with NumPy over 4 MiB blocks (commas per line,
about 10 ms per 10 MB); a file with quotes (a field may hold a comma or a newline) falls
back to Python's csv module (about 3 us per row). The answer is cached per file, size and
modification time, so the several readers of one run (label pass, training, evaluation)
check each file once.
"""

from __future__ import annotations

import csv
import functools

import numpy as np
import tensorflow as tf

from focal_dist.data.files import DataError

_BLOCK = 4 << 20


def check_field_counts(path: str) -> None:
    """Raises DataError naming `path`, the line and the counts if a row is short or long."""
    stat = tf.io.gfile.stat(path)
    _check(path, stat.length, stat.mtime_nsec)


@functools.lru_cache(maxsize=4096)
def _check(path: str, size: int, mtime: int) -> None:
    del size, mtime  # The cache key: a rewritten file is checked again.
    with tf.io.gfile.GFile(path, "rb") as handle:
        found = _first_bad_line_plain(handle)
    if found == "quoted":
        # Text mode: GFile keeps "\r\n" as it is, as csv's newline="" wants.
        with tf.io.gfile.GFile(path, "r") as handle:
            found = _first_bad_line_quoted(handle)
    if found is not None:
        line, fields, expected = found
        raise DataError(
            f"CSV file {path!r} line {line} has {fields} fields, expected {expected} (the "
            "header's); fix or remove that row"
        )


def _first_bad_line_plain(handle):
    """(line, fields, expected) of the first bad row, None, or "quoted" to fall back."""
    expected = None
    line = 0  # Lines finished so far.
    tail = b""
    while True:
        block = handle.read(_BLOCK)
        data = tail + block
        if not block:
            data = data + b"\n" if data.strip() else b""
        if b'"' in data:
            return "quoted"
        raw = np.frombuffer(data, np.uint8)
        ends = np.flatnonzero(raw == ord("\n"))
        if ends.size:
            commas = np.concatenate([[0], np.cumsum(raw == ord(","))])
            starts = np.concatenate([[0], ends[:-1] + 1])
            fields = commas[ends] - commas[starts] + 1
            # Blank lines (also "\r") carry no row.
            blank = (ends - starts) <= (raw[np.maximum(ends - 1, 0)] == ord("\r"))
            if expected is None:
                expected = int(fields[0])
                blank[0] = True
            bad = np.flatnonzero((fields != expected) & ~blank)
            if bad.size:
                return line + int(bad[0]) + 1, int(fields[bad[0]]), expected
            line += ends.size
            tail = data[ends[-1] + 1 :]
        else:
            tail = data
        if not block:
            return None


def _first_bad_line_quoted(handle):
    reader = csv.reader(handle)
    header = next(reader, None)
    expected = len(header or [])
    for row in reader:
        if row and len(row) != expected:
            return reader.line_num, len(row), expected
    return None
