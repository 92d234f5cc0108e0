"""What the entry points share: the errors a user caused, printed as one line each.

A bad config, bad data, a config that does not fit the work dir, a full disk: the user
can act on the message alone, and a traceback around it would only hide it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

from absl import logging


def user_errors() -> tuple[type[Exception], ...]:
    """The exception types an entry point reports as one line (and exit status 1)."""
    from focal_dist.data.files import DataError
    from focal_dist.serving.export import ExportWriteError
    from focal_dist.training.api import WorkdirError
    from focal_dist.training.checkpoints import CheckpointWriteError, NoUsableCheckpointError
    from focal_dist.training.config_check import ConfigError
    from focal_dist.training.run_record import ConfigChangedError

    return (
        ConfigError,
        DataError,
        ConfigChangedError,
        CheckpointWriteError,
        NoUsableCheckpointError,
        WorkdirError,
        ExportWriteError,
    )


def report(error: Exception) -> int:
    """Logs `error` as the one line a user reads; returns the exit status (1)."""
    logging.error("%s", error)
    sys.stdout.flush()
    return 1


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a config override that names no field (or does not parse
    as the field's type) reported as one line naming the argument, exit status 2.

    ml_collections raises it from inside absl's parser as chained tracebacks whose last
    line alone (`Did you mean "steps" instead of "stepz"?`) is what a user needs.
    """
    import re

    from absl import flags

    try:
        return flags.FLAGS(argv)
    except flags.Error as error:  # absl's own: a bad value, an unknown flag.
        sys.stderr.write(f"{argv[0]}: {error}; see --helpfull\n")
        sys.exit(2)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        text = str(error).strip("'\"").replace("\\n", " ").replace("\\'", "'")
        text = " ".join(text.replace("\n", " ").split())
        overrides = [a for a in argv[1:] if a.startswith("--config.")]
        unknown = re.search(r'instead of "([^"]+)"', text) or re.match(r"'?([\w.]+)'?", text)
        named = [a for a in overrides if unknown and unknown.group(1) in a.split("=")[0]]
        argument = (named or overrides or ["a --config flag"])[0]
        hint = re.search(r'Did you mean "[^"]+"', text)
        what = f"no such config field ({hint.group(0)}?)" if hint else f"cannot be set ({text})"
        sys.stderr.write(
            f"{argv[0]}: {argument}: {what}; the fields and their defaults are in "
            "focal_dist/configs/default.py\n"
        )
        sys.exit(2)


def run(main: Callable[[list[str]], object]) -> NoReturn:
    """absl's `app.run(main)` with this module's flag parsing, then a quick exit.

    With TensorFlow loaded, the interpreter's teardown after the last line of a program
    costs about 1.3 s of CPU (freeing thousands of modules' objects one by one): measured
    here, `python -c "import tensorflow"` takes 6.8 s, 5.2 s when it ends in `os._exit`.
    Every trainer, rank and predictor pays it. What a normal exit does that matters is
    kept, in its order: non-daemon threads are joined, then the atexit handlers run
    (Horovod's shutdown, logging's flush), then the standard streams are flushed. The
    entry points close what they write (checkpoints, event files, outputs) before `main`
    returns, so nothing is left for the teardown. Errors other than an exit keep the
    normal path (absl prints the traceback), and so does an entry point that another
    Python program runs (runpy from a wrapper, a notebook): ending the process is only
    ours when the entry point is the program (`python -m focal_dist.train`).
    """
    from absl import app

    try:
        app.run(main, flags_parser=parse_flags)
    except SystemExit as stop:
        if not _is_the_program(main):
            raise
        code = stop.code
    _exit(code)


def _is_the_program(main: Callable) -> bool:
    """True when the process was started to run `main`'s module: `python -m module` (the
    outermost frame is runpy's) or `python path/to/module.py` (the outermost frame is
    that file's)."""
    frame = sys._getframe()
    while frame.f_back is not None:
        frame = frame.f_back
    if frame.f_code.co_name == "_run_module_as_main":
        return True
    module = sys.modules.get(getattr(main, "__module__", ""), None)
    return os.path.abspath(frame.f_code.co_filename) == os.path.abspath(
        getattr(module, "__file__", "") or ""
    )


def _exit(code: object) -> NoReturn:
    import atexit
    import threading

    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, status 1, as the interpreter does.
        sys.stderr.write(f"{code}\n")
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
