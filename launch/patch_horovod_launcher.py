"""Makes `horovodrun` start without importing TensorFlow (about 5 s of every launch).

    python launch/patch_horovod_launcher.py      (run by launch/build_horovod.sh)

Before each launch, horovodrun asks whether the controller it was told to use (`--gloo`,
`--mpi`) was compiled in: `horovod.common.util.gloo_built()` forks a process that
imports `horovod.tensorflow`, and so all of TensorFlow, to call one C function of
Horovod's library. That library only needs TensorFlow's two shared libraries loaded,
not its Python package: loaded so, the same question takes 0.9 s instead of 6 s here.

The patch is appended to the installed `horovod/common/util.py`: the flag questions
("built with Gloo/MPI/NCCL/...") ask the library alone, in a forked process as before;
any failure falls back to Horovod's own check, and every other question (is an
extension available, is a GPU there) is Horovod's own. Idempotent (a marker line).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

MARKER = "# focal_dist: built-flag questions without importing the framework"

PATCH = f"""

{MARKER} (launch/patch_horovod_launcher.py)
def _focal_dist_library(ext_base_name):
    import ctypes
    import importlib.util as _util

    from horovod.common.basics import HorovodBasics

    if ext_base_name != "tensorflow":
        raise ImportError(ext_base_name)
    framework = os.path.dirname(_util.find_spec("tensorflow").origin)
    for name in ("libtensorflow_framework.so.2", "libtensorflow_cc.so.2"):
        ctypes.CDLL(os.path.join(framework, name), mode=ctypes.RTLD_GLOBAL)
    package = os.path.join(os.path.dirname(os.path.dirname(__file__)), ext_base_name)
    return HorovodBasics(os.path.join(package, "__init__.py"), "mpi_lib")


_focal_dist_framework_check = _check_extension_lambda


def _check_extension_lambda(ext_base_name, fn, fn_desc, verbose):
    if not fn_desc.startswith("built with"):
        return _focal_dist_framework_check(ext_base_name, fn, fn_desc, verbose)

    def target(queue):
        try:
            queue.put(("ok", fn(_focal_dist_library(ext_base_name))))
        except BaseException:
            queue.put(("fallback", None))

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    process = ctx.Process(target=target, args=(queue,))
    process.daemon = True
    process.start()
    process.join()
    status, result = queue.get_nowait() if not queue.empty() else ("fallback", None)
    if status == "ok":
        return result
    return _focal_dist_framework_check(ext_base_name, fn, fn_desc, verbose)
"""


def main() -> int:
    spec = importlib.util.find_spec("horovod")
    if spec is None or spec.origin is None:
        print("patch_horovod_launcher: horovod is not installed", file=sys.stderr)
        return 1
    util = Path(spec.origin).parent / "common" / "util.py"
    text = util.read_text()
    if MARKER in text:
        return 0
    for needed in ("def _check_extension_lambda(", "import multiprocessing"):
        if needed not in text:
            print(f"patch_horovod_launcher: {util} has no {needed!r}; not patched", file=sys.stderr)
            return 1
    util.write_text(text + PATCH)
    print(f"patch_horovod_launcher: {util} patched (horovodrun no longer imports TensorFlow)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
