#!/usr/bin/env bash
# One Horovod rank, as launch/horovod.sh starts it through horovodrun or mpirun:
#   launch/rank.sh python -m focal_dist.train ...
# Runs the trainer through launch/cpu_limit.sh (threads sized to this machine's or pod's
# CPU limit), passes SIGTERM/SIGINT on to it, and records its exit status in
# $FOCAL_DIST_STATUS_DIR/rank-<rank> (on the run's shared work dir), because horovodrun
# and mpirun report only that "a process" failed: launch/horovod.sh reads these files to
# tell a preempted run (every rank 0 or 143) from a lost or failed rank, and names it.
# The file holds "<status> <when the trainer ended, ns since the epoch>": when one rank
# fails, Horovod then ends the others (often non-zero too), so the launcher names the
# rank that ended first, whatever the order in which the files were written.
set -uo pipefail

"$(dirname "${BASH_SOURCE[0]}")/cpu_limit.sh" "$@" &
trainer=$!
trap 'kill -TERM "${trainer}" 2>/dev/null' TERM
trap 'kill -INT "${trainer}" 2>/dev/null' INT
# `wait` returns early when a trapped signal arrives; wait again until the trainer ends.
while true; do
    wait "${trainer}"
    status=$?
    kill -0 "${trainer}" 2>/dev/null || break
done
ended="$(date +%s%N)"
rank="${HOROVOD_RANK:-${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}}}"
if [[ -n "${FOCAL_DIST_STATUS_DIR:-}" ]]; then
    # Written beside, then renamed: a kill while writing leaves no half of a status.
    file="${FOCAL_DIST_STATUS_DIR}/rank-${rank}"
    mkdir -p "${FOCAL_DIST_STATUS_DIR}" && echo "${status} ${ended}" >"${file}.partial" \
        && mv -f "${file}.partial" "${file}"
fi
exit "${status}"
