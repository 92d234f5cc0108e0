"""Files a user reads or a job controller checks, replaced whole or not at all.

A file is written beside its destination, flushed and fsynced, then renamed over it:
a kill at any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os


def write_text(path: str, text: str) -> str:
    """Replaces `path` with `text` atomically; returns `path`."""
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return path


def write_json(path: str, value, *, indent: int = 2) -> str:
    """Replaces `path` with `value` as JSON atomically; returns `path`."""
    return write_text(path, json.dumps(value, indent=indent) + "\n")


def append_line(path: str, line: str) -> None:
    """Appends one line and fsyncs it: a reader sees it whole once this returns."""
    with open(path, "a") as handle:
        handle.write(line.rstrip("\n") + "\n")
        handle.flush()
        os.fsync(handle.fileno())
