#!/usr/bin/env bash
# Runs the focal_dist trainer under horovodrun and prints the command it runs.
#
#   launch/horovod.sh -np N [-H host:slots,...|--hostfile FILE] [--mpi|--gloo] [--nics LIST] -- <train flags>
#
# <train flags> go to `python -m focal_dist.train` (--distribution=horovod is added; a
# missing --config means configs/default.py). Hosts: -H or --hostfile; else the MPI
# operator's hostfile ($OMPI_MCA_orte_default_hostfile) when set; else localhost:N.
# Transport: --gloo (default) or --mpi. --nics names the network interfaces (e.g. eth0
# in a pod) so that horovodrun skips probing every host for them. Each rank starts
# through launch/rank.sh: its thread pools follow its own CPU limit (on one machine N
# ranks share the cores) and its exit status is kept under <workdir>/.launch.
#
# Preemption: SIGTERM or SIGINT here reaches the ranks (directly where they run on this
# machine, else through mpirun, which waits $OMPI_MCA_odls_base_sigkill_timeout seconds,
# 60 by default, before it kills): they agree to stop, rank 0 checkpoints, and this script
# exits 143. Exit status: 0 when the run finished; 143 when it stopped with a checkpoint
# (every rank exited 0 or 143), from SIGTERM here or on any rank; otherwise non-zero,
# naming the rank that failed or was lost. Rerunning the same command resumes.
# Env: FOCAL_DIST_PYTHON (default: the repository's .venv python).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${FOCAL_DIST_PYTHON:-${root}/.venv/bin/python}"
horovodrun="$(dirname "${python}")/horovodrun"

usage() {
    sed -n '4p' "${BASH_SOURCE[0]}" | sed 's/^# *//' >&2
    echo "launch/horovod.sh: $1" >&2
    exit 2
}

np="" hosts="" hostfile="" transport="--gloo" nics=""
while (($#)); do
    case "$1" in
        -np) np="${2:-}"; shift 2 || usage "-np needs a value" ;;
        -H) hosts="${2:-}"; shift 2 || usage "-H needs a value" ;;
        --hostfile) hostfile="${2:-}"; shift 2 || usage "--hostfile needs a value" ;;
        --mpi | --gloo) transport="$1"; shift ;;
        --nics) nics="${2:-}"; shift 2 || usage "--nics needs a value" ;;
        --) shift; break ;;
        *) usage "unknown option '$1' (train flags go after --)" ;;
    esac
done
[[ "${np}" =~ ^[1-9][0-9]*$ ]] || usage "-np must be a positive integer, got '${np}'"
[[ -x "${python}" ]] || usage "no python at ${python} (run \`make setup\` or set FOCAL_DIST_PYTHON)"
[[ -x "${horovodrun}" ]] || usage "no horovodrun beside ${python} (run \`make setup\`)"
if [[ -z "${hosts}" && -z "${hostfile}" ]]; then
    if [[ -n "${OMPI_MCA_orte_default_hostfile:-}" ]]; then
        hostfile="${OMPI_MCA_orte_default_hostfile}"
    else
        hosts="localhost:${np}"
    fi
fi
if [[ -n "${hostfile}" && ! -r "${hostfile}" ]]; then
    usage "hostfile '${hostfile}' is not readable"
fi

train_flags=("$@")
has_config=0 workdir=""
for flag in "${train_flags[@]}"; do
    [[ "${flag}" == --workdir=* ]] && workdir="${flag#--workdir=}"
    [[ "${flag}" == --config=* || "${flag}" == --config ]] && has_config=1
    [[ "${flag}" == --distribution* ]] && usage "do not pass ${flag}: this launcher is horovod"
done
[[ -n "${workdir}" ]] || usage "give --workdir=DIR among the train flags"
# Ranks on other hosts see the same path (the work dir is shared: they restore from it).
export FOCAL_DIST_STATUS_DIR="$(realpath -m "${workdir}")/.launch/$(hostname)-$$-$(date +%s)"
((has_config)) || train_flags=("--config=${root}/configs/default.py" "${train_flags[@]}")

# N processes on one machine would each start nproc threads: share the cores instead.
if [[ -n "${hosts}" && -z "${TF_NUM_INTRAOP_THREADS:-}" ]] \
    && ! tr ',' '\n' <<<"${hosts}" | grep -qvE '^(localhost|127\.0\.0\.1)(:[0-9]+)?$'; then
    threads=$(($(nproc) / np))
    export TF_NUM_INTRAOP_THREADS=$((threads > 0 ? threads : 1))
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${TF_NUM_INTRAOP_THREADS}}"
fi
export PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}"
# mpirun's default is 1 s between SIGTERM and SIGKILL: too short to save a checkpoint.
export OMPI_MCA_odls_base_sigkill_timeout="${OMPI_MCA_odls_base_sigkill_timeout:-60}"

command=("${horovodrun}" -np "${np}")
if [[ -n "${hostfile}" ]]; then command+=(--hostfile "${hostfile}"); else command+=(-H "${hosts}"); fi
[[ -z "${nics}" ]] || command+=(--network-interfaces "${nics}")
command+=("${transport}" "${root}/launch/rank.sh" "${python}" -m focal_dist.train
    --distribution=horovod "${train_flags[@]}")
echo "+ ${command[*]}" >&2

descendants() { # every process below $1
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END { for (p in parent) { q = p; while (q in parent && q != root) q = parent[q];
              if (q == root && p != root) print p } }'
}
matching() { # the descendants of $1 whose program (argv[0], or a script's argv[1]) is $2
    local pid program
    for pid in $(descendants "$1"); do
        program="$(tr '\0' '\n' <"/proc/${pid}/cmdline" 2>/dev/null | head -2 | grep -m1 -v '^bash$' || true)"
        if [[ "${program##*/}" == "$2" ]]; then echo "${pid}"; fi
    done
}
stop_ranks() {
    echo "launch/horovod.sh: $1: asking every rank to checkpoint and stop" >&2
    local ranks
    ranks="$(matching "${runner}" rank.sh || true)"
    # Ranks on this machine get the signal directly (horovodrun would kill them after
    # 5 s); otherwise mpirun passes it on to every rank. One rank is enough: they agree.
    if [[ -n "${ranks}" ]]; then kill -TERM ${ranks} 2>/dev/null || true
    else kill -TERM $(matching "${runner}" mpirun || true) 2>/dev/null || true; fi
}

"${command[@]}" &
runner=$!
trap 'stop_ranks SIGTERM' TERM
trap 'stop_ranks SIGINT' INT
status=0
# `wait` returns early when a trapped signal arrives; wait again until horovodrun ends.
while true; do
    wait "${runner}" && status=0 || status=$?
    kill -0 "${runner}" 2>/dev/null || break
done
report="$("${root}/launch/rank_status.sh" "${FOCAL_DIST_STATUS_DIR}" "${np}")"
failed="$(sed -n 's/^failed //p' <<<"${report}")"
preempted="$(sed -n 's/^preempted //p' <<<"${report}")"
codes="$(sed -n 's/^codes //p' <<<"${report}")"
rm -rf "${FOCAL_DIST_STATUS_DIR}"
rmdir "$(dirname "${FOCAL_DIST_STATUS_DIR}")" 2>/dev/null || true
if [[ -n "${failed}" ]]; then
    echo "launch/horovod.sh: ${failed} [${codes}]; horovodrun exited with status" \
        "${status}; rerunning resumes from the last checkpoint in ${workdir}/checkpoints" >&2
    ((status != 0)) || status=1
    exit "${status}"
fi
if [[ "${preempted}" == 1 ]]; then
    echo "launch/horovod.sh: stopped with a checkpoint in ${workdir}; exiting 143 (rerun to resume)" >&2
    exit 143
fi
exit "${status}"
