"""launch/build_horovod.sh: idempotent on a venv whose Horovod loads, and a GPU build it
cannot compile is refused with the reason, before anything is downloaded or built."""

import os
import subprocess
import sys
from pathlib import Path

from tests.training.runs import ROOT

SCRIPT = ROOT / "launch" / "build_horovod.sh"
BIN = Path(sys.executable).parent


def _run(**env):
    return subprocess.run(
        ["bash", str(SCRIPT), str(BIN), str(ROOT / "constraints.txt")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
        timeout=120,
    )


def test_a_horovod_that_loads_with_this_tensorflow_is_kept():
    result = _run(HOROVOD_GPU_OPERATIONS="")
    assert result.returncode == 0, result.stderr
    assert "already built against this venv's TensorFlow" in result.stdout


def test_nccl_on_tensorflow_2_19_and_later_is_refused_naming_why(tmp_path):
    import tensorflow as tf

    major, minor = (int(part) for part in tf.__version__.split(".")[:2])
    assert (major, minor) >= (2, 19), "the tested stack is TF 2.21"
    result = _run(HOROVOD_GPU_OPERATIONS="NCCL", HOROVOD_WHEEL_CACHE=str(tmp_path))
    assert result.returncode == 1
    assert "HOROVOD_GPU_OPERATIONS=NCCL is not buildable" in result.stderr
    assert tf.__version__ in result.stderr
    assert "collectives run on the host" in result.stderr
    assert not any(tmp_path.iterdir())  # nothing was built or cached


def _printed(code: str) -> list[str]:
    """What `python -c code` prints, split into words."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()


def test_horovodrun_learns_what_was_compiled_in_without_importing_tensorflow(tmp_path):
    # What the launcher asks before every launch, against what horovod.tensorflow itself
    # answers in a process of its own. An audit hook, which the launcher's forked
    # children inherit, records any import of TensorFlow's Python package.
    imported = tmp_path / "imported"
    asked = _printed(
        "import os, sys\n"
        "def hook(event, args):\n"
        "    if event == 'import' and args[0] == 'tensorflow':\n"
        f"        open({str(imported)!r}, 'a').write(str(os.getpid()))\n"
        "sys.addaudithook(hook)\n"
        "from horovod.common import util\n"
        "print(util.gloo_built(), util.mpi_built(), util.nccl_built())"
    )
    answered = _printed(
        "import horovod.tensorflow as hvd; "
        "print(hvd.gloo_built(), hvd.mpi_built(), hvd.nccl_built())"
    )
    assert asked == answered
    assert not imported.exists(), "the launcher's check imported TensorFlow"
