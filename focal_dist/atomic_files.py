"""Files a user reads or a job controller checks, replaced whole or not at all.

A file is written beside its destination, flushed and fsynced, then renamed over it:
a kill at any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil


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


def replace_directory(finished: str, path: str) -> str:
    """Moves the complete directory `finished` to `path`, replacing any earlier one.

    Where Linux's renameat2(RENAME_EXCHANGE) works, the two are swapped in one step
    and the earlier one is then removed: a reader sees the old tree or the new one,
    never neither. Elsewhere the earlier one is renamed to `<path>.previous` first; a
    kill between the two renames leaves it there, and the next call removes it.
    """
    import shutil

    previous = f"{path}.previous"
    if os.path.isdir(previous):
        shutil.rmtree(previous)
    if os.path.isdir(path) and _exchange(finished, path):
        shutil.rmtree(finished)
        return path
    if os.path.isdir(path):
        os.rename(path, previous)
    os.rename(finished, path)
    if os.path.isdir(previous):
        shutil.rmtree(previous)
    return path


def _exchange(first: str, second: str) -> bool:
    """Atomically swaps two paths (Linux renameat2); False where that is unavailable."""
    import ctypes

    try:
        rename = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_cwd, exchange = -100, 2  # AT_FDCWD, RENAME_EXCHANGE
    return rename(at_cwd, os.fsencode(first), at_cwd, os.fsencode(second), exchange) == 0


def is_disk_full(error: BaseException) -> bool:
    """True for a full device, from Python (errno ENOSPC) or TensorFlow (its message)."""
    return getattr(error, "errno", None) == errno.ENOSPC or "No space left" in str(error)


@contextlib.contextmanager
def no_space_as(error_type: type[OSError], target: str, partial: str):
    """Turns a full disk while writing `partial` (for `target`) into one `error_type` whose
    message names the device's path and what to do; `partial` is removed first, so
    nothing half-written is left. Other errors pass through unchanged."""
    try:
        yield
    except Exception as error:
        if not is_disk_full(error):
            raise
        if os.path.isdir(partial):
            shutil.rmtree(partial, ignore_errors=True)
        elif os.path.exists(partial):
            os.remove(partial)
        raise error_type(
            f"no space left on the device of {target} while writing it (the half-written "
            f"{partial} was removed; the checkpoints are intact). Free space, or use a "
            "--workdir on a larger volume, and rerun the same command: it resumes from the "
            "last checkpoint and writes it again",
        ) from None
