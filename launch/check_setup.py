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
    # TensorFlow is `tensorflow-cpu` here and `tensorflow` in a GPU venv.
    names = (
        ("tensorflow-cpu", "tensorflow") if distribution == "tensorflow-cpu" else (distribution,)
    )
    for name in names:
        try:
            return (
                f"{importlib.metadata.version(name)} ({name})"
                if len(names) > 1
                else (importlib.metadata.version(name))
            )
        except importlib.metadata.PackageNotFoundError:
            continue
    return "(version unknown)"


def _pinned(distribution: str) -> str:
    """`name==version` as constraints.txt pins it (the hint for a missing package)."""
    constraints = os.path.join(os.path.dirname(__file__), "..", "constraints.txt")
    with open(constraints) as lines:
        for line in lines:
            if line.split("==")[0].strip().lower() == distribution.lower():
                return line.strip()
    return distribution


def _check_imports(problems: list[str]) -> None:
    for module, distribution in [
        ("tensorflow", "tensorflow-cpu"),
        ("keras", "keras"),
        ("numpy", "numpy"),
        ("absl", "absl-py"),
        ("ml_collections", "ml-collections"),
        ("tensorboard", "tensorboard"),
        ("tensorboard_plugin_profile", "tensorboard-plugin-profile"),
        ("pyarrow.parquet", "pyarrow"),
        ("pydicom", "pydicom"),
    ]:
        try:
            importlib.import_module(module)
            print(f"ok   {module} {_version(distribution)}")
        except Exception as exc:
            problems.append(f"{module} does not import ({exc}); install {_pinned(distribution)}")


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
    _check_horovod(problems)
    for problem in problems:
        print(f"MISSING {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
