"""What the entry points share: the errors a user caused, printed as one line each.

A bad config, bad data, a config that does not fit the work dir, a full disk: the user
can act on the message alone, and a traceback around it would only hide it.
"""

from __future__ import annotations

import sys

from absl import logging


def user_errors() -> tuple[type[Exception], ...]:
    """The exception types an entry point reports as one line (and exit status 1)."""
    from focal_dist.data.files import DataError
    from focal_dist.training.checkpoints import CheckpointWriteError, NoUsableCheckpointError
    from focal_dist.training.config_check import ConfigError
    from focal_dist.training.run_record import ConfigChangedError

    return (
        ConfigError,
        DataError,
        ConfigChangedError,
        CheckpointWriteError,
        NoUsableCheckpointError,
    )


def report(error: Exception) -> int:
    """Logs `error` as the one line a user reads; returns the exit status (1)."""
    logging.error("%s", error)
    sys.stdout.flush()
    return 1
