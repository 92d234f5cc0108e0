#!/usr/bin/env bash
# Builds Horovod 0.28.1 from its sdist against the TensorFlow in a venv and installs it.
#
#   launch/build_horovod.sh VENV_BIN CONSTRAINTS
#
# Run by `make setup` (and so by the image's build). Idempotent: a Horovod that already
# imports with this TensorFlow is kept; otherwise the wheel is taken from the cache
# ($HOROVOD_WHEEL_CACHE, keyed by Horovod, TensorFlow, controllers and GPU operations)
# or built once into it (about 3 minutes on 2 cores). Any failure stops with the reason:
# there is no quiet fallback to a Horovod-less set-up.
#
# Why a patch: 0.28.1 (the last release) includes XLA headers in
# horovod/tensorflow/xla_mpi_ops.cc that TensorFlow >= 2.19 moved. That file serves
# the GPU XLA ops alone, so a CPU build (Gloo, MPI) compiles it out by adding
# `&& HAVE_GPU` to its first guard. A GPU build with NCCL on TF >= 2.19 needs more
# (docs/operations.md, "Horovod on GPUs").
#
# After install, launch/patch_horovod_launcher.py lets horovodrun ask whether Gloo or MPI
# was compiled in without importing TensorFlow (5 s of every launch).
set -euo pipefail

bin=${1:?usage: build_horovod.sh VENV_BIN CONSTRAINTS}
constraints=${2:?usage: build_horovod.sh VENV_BIN CONSTRAINTS}
version=0.28.1
pip=("$bin/python" -m pip --disable-pip-version-check)
cache=${HOROVOD_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/focal_dist/horovod}

tf_version=$("$bin/python" -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null) || {
    echo "horovod: TensorFlow does not import from $bin; install it first" >&2
    exit 1
}
gpu_ops=${HOROVOD_GPU_OPERATIONS:-}
tf_minor=$(echo "$tf_version" | cut -d. -f2)
if [ -n "$gpu_ops" ] && [ "$(echo "$tf_version" | cut -d. -f1)" -ge 2 ] && [ "$tf_minor" -ge 19 ]; then
    echo "horovod: HOROVOD_GPU_OPERATIONS=$gpu_ops is not buildable here: Horovod $version with" \
        "NCCL does not compile against TensorFlow $tf_version (xla_mpi_ops.cc's XLA headers," \
        "absl::StatusOr, AsGpuStreamValue; conda-forge's horovod feedstock carries the patches)." \
        "Build without it (collectives run on the host) or use TensorFlow <= 2.18." >&2
    exit 1
fi
launcher_patch="$(dirname "$0")/patch_horovod_launcher.py"
if "$bin/python" -c 'import horovod.tensorflow' 2>/dev/null; then
    echo "horovod: already built against this venv's TensorFlow"
    "$bin/python" "$launcher_patch"
    exit 0
fi

if command -v mpicxx >/dev/null; then
    controllers=gloo-mpi; mpi=HOROVOD_WITH_MPI=1
else
    controllers=gloo; mpi=HOROVOD_WITHOUT_MPI=1
    echo "horovod: no mpicxx, building with Gloo only (install openmpi-bin libopenmpi-dev for MPI)"
fi
# tensorflow and tensorflow-cpu of one release are different builds: each gets its wheel.
tf_dist=$("$bin/python" -c 'import importlib.metadata as m
for d in ("tensorflow", "tensorflow-cpu"):
    try:
        m.version(d); print(d); break
    except m.PackageNotFoundError:
        pass')
key="horovod-$version-$tf_dist-$tf_version-$controllers${gpu_ops:+-$gpu_ops}-py$("$bin/python" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
wheel_dir="$cache/$key"

if ! ls "$wheel_dir"/horovod-*.whl >/dev/null 2>&1; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    echo "horovod: building $version for TensorFlow $tf_version ($controllers${gpu_ops:+, $gpu_ops}); about 3 min, cached in $wheel_dir"
    "${pip[@]}" download -q --no-deps --no-binary :all: "horovod==$version" -d "$work"
    tar -xzf "$work/horovod-$version.tar.gz" -C "$work"
    source_dir="$work/horovod-$version"
    xla="$source_dir/horovod/tensorflow/xla_mpi_ops.cc"
    if [ -z "$gpu_ops" ]; then
        sed -i '0,/^#if TENSORFLOW_VERSION >= 2006000000$/s//#if TENSORFLOW_VERSION >= 2006000000 \&\& HAVE_GPU/' "$xla"
        grep -q '^#if TENSORFLOW_VERSION >= 2006000000 && HAVE_GPU$' "$xla" || {
            echo "horovod: the guard in $xla was not found; the sdist is not the expected $version" >&2
            exit 1
        }
    fi
    # --no-build-isolation: Horovod's setup.py imports the venv's TensorFlow and CMake.
    env HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_PYTORCH=1 \
        HOROVOD_WITHOUT_MXNET=1 "$mpi" ${gpu_ops:+HOROVOD_GPU_OPERATIONS=$gpu_ops} \
        PATH="$bin:$PATH" \
        "${pip[@]}" wheel -q --no-build-isolation --no-deps -w "$work/wheel" "$source_dir"
    mkdir -p "$wheel_dir"
    mv "$work"/wheel/horovod-*.whl "$wheel_dir/"
fi

"${pip[@]}" install -q --no-deps --force-reinstall "$wheel_dir"/horovod-*.whl
"${pip[@]}" install -q -c "$constraints" psutil cloudpickle pyyaml packaging
if ! err=$("$bin/python" -c 'import horovod.tensorflow as hvd; hvd.init()' 2>&1); then
    echo "horovod: the wheel in $wheel_dir does not load with TensorFlow $tf_version:" >&2
    echo "$err" | tail -5 >&2
    echo "horovod: remove $wheel_dir and run make setup again" >&2
    exit 1
fi
"$bin/python" "$launcher_patch"
echo "horovod: $version loads with TensorFlow $tf_version ($controllers)"
