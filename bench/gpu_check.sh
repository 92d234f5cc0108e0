#!/usr/bin/env bash
# The check to run on a machine with a GPU, from a clone with `make setup` done:
#
#   bench/gpu_check.sh [--no-install] [--dry] [--cases=a,b] [--steps=N] [--set=k=v] \
#       [--workdir=DIR] [--timeout=S] [--budget=S] [--loss_rtol=R] [--logical_gpu_memory_mb=M]
#
# Every option but --no-install goes to the driver (`.venv/bin/python bench/gpu_check.py
# run --help` says what each does).
#
# 1. No GPU (CUDA_VISIBLE_DEVICES hides them, no nvidia-smi, or it lists none): says so
#    and exits 2 at once, before TensorFlow is imported.
# 2. The venv's TensorFlow must see the GPU. `make setup` installs tensorflow-cpu, which
#    never does: the script then replaces it in .venv by tensorflow[and-cuda] of the
#    release constraints.txt pins (TensorFlow's CUDA libraries: gigabytes to download, not
#    counted in the check's time; --no-install prints the commands instead and exits 1). It prints the GPU as
#    nvidia-smi and TensorFlow report it (name, memory, driver, CUDA, compute capability).
# 3. bench/gpu_check.py run: the default config on one device and on MirroredStrategy
#    with 2 replicas (the GPU split into 2 logical GPUs) and their per-step loss
#    difference, mixed precision, XLA, the segmentation config, our loop against
#    model.fit at its best, each with its peak GPU memory; a table with PASS/FAIL. Meant
#    to take under 5 minutes on one GPU (--budget=300 stops it there; not yet measured:
#    no GPU has run it).
#
# Exit status: 0 every row passed; 1 a failure (a case, the set-up, the install); 2 no GPU.
# Horovod is not run: its GPU build with NCCL needs patches beyond the one `make setup`
# applies, and the CPU build would only move tensors to the host for its collectives.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

install=1
driver_flags=()
for argument in "$@"; do
    case $argument in
        --no-install) install=0 ;;
        --dry | --cases=* | --steps=* | --workdir=* | --set=* | --timeout=* | --budget=* | \
            --loss_rtol=* | --logical_gpu_memory_mb=*)
            driver_flags+=("$argument") ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "gpu_check: unknown argument '$argument' (--help lists them)" >&2; exit 64 ;;
    esac
done

no_gpu() {
    echo "gpu_check: no GPU found: $*"
    echo "gpu_check: nothing was run"
    exit 2
}

# 1. Instant checks: nothing below runs without a GPU.
if [[ -v CUDA_VISIBLE_DEVICES ]] && ! [[ $CUDA_VISIBLE_DEVICES =~ ^[[:space:]]*([0-9]|GPU-|MIG-) ]]; then
    no_gpu "CUDA_VISIBLE_DEVICES='$CUDA_VISIBLE_DEVICES' hides every GPU"
fi
command -v nvidia-smi >/dev/null || no_gpu "nvidia-smi is not on PATH (no NVIDIA driver here)"
listed=$(nvidia-smi -L 2>&1) || no_gpu "nvidia-smi -L failed: $listed"
grep -q '^GPU [0-9]' <<<"$listed" || no_gpu "nvidia-smi -L lists none: $listed"
echo "gpu_check: nvidia-smi lists"
echo "$listed"

python=.venv/bin/python
if [[ ! -x $python || ! -f .venv/.focal_dist-setup ]]; then
    echo "gpu_check: no finished set-up in .venv: run 'make setup' first" >&2
    exit 1
fi

# 2. TensorFlow must see the GPU; its warnings say why when it does not.
probe() {
    local status=0
    TF_CPP_MIN_LOG_LEVEL=1 "$python" bench/gpu_check.py probe || status=$?
    return "$status"
}
status=0
probe || status=$?
if ((status == 3 || status == 4)); then
    release=$(sed -n 's/^tensorflow-cpu==\([^ ]*\)$/\1/p' constraints.txt)
    [[ -n $release ]] || { echo "gpu_check: constraints.txt pins no tensorflow-cpu" >&2; exit 1; }
    pip=("$python" -m pip --disable-pip-version-check)
    remove=()
    ((status == 3)) && remove=("${pip[@]}" uninstall -y tensorflow-cpu)
    add=("${pip[@]}" install -c constraints.txt "tensorflow[and-cuda]==$release")
    if ((install == 0)); then
        echo "gpu_check: the venv's TensorFlow cannot use the GPU; --no-install: not changing .venv."
        echo "gpu_check: to use the GPU, run:"
        ((${#remove[@]})) && echo "    ${remove[*]}"
        echo "    ${add[*]}"
        exit 1
    fi
    echo "gpu_check: installing tensorflow[and-cuda]==$release into .venv (gigabytes of CUDA libraries)"
    # tensorflow-cpu and tensorflow write the same files: remove one before adding the other.
    started=$SECONDS
    ((${#remove[@]})) && "${remove[@]}"
    if ! "${add[@]}"; then
        echo "gpu_check: installing tensorflow[and-cuda]==$release failed" >&2
        if ((status == 3)); then
            echo "gpu_check: putting tensorflow-cpu==$release back" >&2
            "${pip[@]}" install -q -c constraints.txt "tensorflow-cpu==$release" || true
        fi
        exit 1
    fi
    echo "gpu_check: installed in $((SECONDS - started)) s; to return to tensorflow-cpu," \
        "remove .venv and run 'make setup'"
    status=0
    probe || status=$?
fi
if ((status != 0)); then
    echo "gpu_check: TensorFlow in .venv does not see the GPU that nvidia-smi lists (above)" >&2
    exit 1
fi

# 3. The cases, each in its own process; the driver prints the table and sets the status.
started=$SECONDS
status=0
"$python" bench/gpu_check.py run --device=gpu ${driver_flags[@]+"${driver_flags[@]}"} || status=$?
echo "gpu_check: $((SECONDS - started)) s for the cases; exit $status"
exit "$status"
