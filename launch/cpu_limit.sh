#!/bin/sh
# Sizes TensorFlow's and OpenMP's thread pools to this container's CPU limit, then execs
# the command:  launch/cpu_limit.sh python -m focal_dist.train ...
#
# Without it a pod limited to 2 CPUs on a 64-core node starts 64 intra-op threads per
# process and is throttled. TensorFlow reads TF_NUM_INTRAOP_THREADS/TF_NUM_INTEROP_THREADS
# at start-up; OpenMP (oneDNN) reads OMP_NUM_THREADS. Values already set are kept (the
# TFJob sets them from the pod's resourceFieldRef). Otherwise the limit is ceil(quota /
# period) of the cgroup (v2 cpu.max, v1 cpu.cfs_quota_us), else `nproc`. Used where the
# pod's env does not reach the trainer: MPI starts it through sshd.
# FOCAL_DIST_CGROUP_ROOT (default /sys/fs/cgroup) is for tests.
set -eu

cgroup="${FOCAL_DIST_CGROUP_ROOT:-/sys/fs/cgroup}"
limit=""
if [ -r "${cgroup}/cpu.max" ]; then
    limit=$(awk '$1 != "max" { print int(($1 + $2 - 1) / $2) }' "${cgroup}/cpu.max")
elif [ -r "${cgroup}/cpu/cpu.cfs_quota_us" ] && [ -r "${cgroup}/cpu/cpu.cfs_period_us" ]; then
    limit=$(awk -v q="$(cat "${cgroup}/cpu/cpu.cfs_quota_us")" \
        -v p="$(cat "${cgroup}/cpu/cpu.cfs_period_us")" \
        'BEGIN { if (q > 0) print int((q + p - 1) / p) }')
fi
if [ -z "${limit}" ] || [ "${limit}" -lt 1 ]; then
    limit=$(nproc)
fi
export TF_NUM_INTRAOP_THREADS="${TF_NUM_INTRAOP_THREADS:-${limit}}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${TF_NUM_INTRAOP_THREADS}}"
# Inter-op parallelism runs independent ops side by side; more than the cores only queues.
export TF_NUM_INTEROP_THREADS="${TF_NUM_INTEROP_THREADS:-$((limit < 2 ? limit : 2))}"
exec "$@"
