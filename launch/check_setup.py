"""Checks that the venv holds the tested stack; prints what is missing and how to fix it.

Run by `make setup` (and `make check-setup`). Exit status 1 when something is missing.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
FIX = "remove .venv/.focal_dist-setup and run `make setup` again"


def _version(distribution: str) -> str:
    """The installed version of a pip distribution (modules such as absl have none)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


def _check_imports(problems: list[str]) -> None:
    for module, distribution, hint in [
        ("tensorflow", "tensorflow-cpu", "tensorflow-cpu==2.17.1 (constraints.txt)"),
        ("keras", "keras", "keras 3 (constraints.txt)"),
        ("absl", "absl-py", "absl-py"),
        ("ml_collections", "ml-collections", "ml-collections"),
        ("tensorboard", "tensorboard", "tensorboard==2.17.1"),
        (
            "tensorboard_plugin_profile",
            "tensorboard-plugin-profile",
            "tensorboard-plugin-profile==2.17.0 (Profile tab)",
        ),
    ]:
        try:
            importlib.import_module(module)
            print(f"ok   {module} {_version(distribution)}")
        except Exception as exc:
            problems.append(f"{module} does not import ({exc}); install {hint}")


def _check_tensorflow_io(problems: list[str]) -> None:
    try:
        import tensorflow_io as tfio

        # Touching the Parquet reader loads tensorflow-io's kernels (the .so that fails on
        # TF >= 2.18), not just the Python package.
        assert callable(tfio.IODataset.from_parquet)
        from tensorflow_io.python.ops import core_ops

        assert callable(core_ops.io_parquet_readable_info)
        print(f"ok   tensorflow_io {tfio.__version__} (Parquet reader loads)")
    except Exception as exc:
        problems.append(
            f"tensorflow-io's Parquet reader does not load ({exc!r}); it needs "
            "tensorflow-io==0.37.1 on tensorflow 2.17"
        )


def _check_horovod(problems: list[str]) -> None:
    horovodrun = shutil.which("horovodrun", path=os.path.dirname(sys.executable))
    if horovodrun is None:
        problems.append(f"horovodrun not found in the venv; {FIX}")
        return
    out = subprocess.run(
        [horovodrun, "--check-build"], capture_output=True, text=True, check=False
    ).stdout
    for needed in ("[X] TensorFlow", "[X] Gloo"):
        if needed not in out:
            problems.append(
                f"`horovodrun --check-build` lacks {needed!r}; rebuild Horovod with "
                f"HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1: {FIX}\n{out}"
            )
    mpi = "[X] MPI" in out
    print(f"ok   horovod (TensorFlow, Gloo{', MPI' if mpi else '; no MPI'})")


def main() -> int:
    problems: list[str] = []
    _check_imports(problems)
    _check_tensorflow_io(problems)
    _check_horovod(problems)
    for problem in problems:
        print(f"MISSING {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
