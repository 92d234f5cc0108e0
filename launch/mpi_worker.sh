#!/usr/bin/env bash
# Entry point of an MPIJob worker pod: sshd for the launcher's mpirun, and SIGTERM passed
# on to the trainer.
#
# The MPI operator's default worker command is `/usr/sbin/sshd -De`; as PID 1 it takes
# the pod's SIGTERM and dies, the trainer (a child of sshd and orted) never sees it, and
# the run loses everything since its last checkpoint. Here sshd runs as a child; on
# SIGTERM the trainer processes of this pod get it, agree with every other rank to stop,
# rank 0 saves a checkpoint and every rank exits 143, which fails the launcher, and the
# launcher's restart resumes from that checkpoint (docs/operations.md, "Preemption").
set -euo pipefail

# FOCAL_DIST_SSHD and FOCAL_DIST_TRAINER_PATTERN exist for tests.
trainer_pattern="${FOCAL_DIST_TRAINER_PATTERN:-focal_dist.train}"
grace="${FOCAL_DIST_STOP_SECONDS:-50}"
read -r -a sshd <<<"${FOCAL_DIST_SSHD:-/usr/sbin/sshd -De}"

mkdir -p /run/sshd
"${sshd[@]}" &
sshd_pid=$!

on_term() {
    echo "mpi_worker: SIGTERM: asking the trainer ('${trainer_pattern}') to checkpoint" >&2
    if pkill -TERM -f -- "${trainer_pattern}"; then
        for ((waited = 0; waited < grace; waited++)); do
            pgrep -f -- "${trainer_pattern}" >/dev/null || break
            sleep 1
        done
        if pgrep -f -- "${trainer_pattern}" >/dev/null; then
            echo "mpi_worker: trainer still running after ${grace}s" >&2
        fi
    fi
    kill -TERM "${sshd_pid}" 2>/dev/null || true
    exit 143
}
trap on_term TERM INT
# `wait` returns when a trapped signal arrives, so the handler runs at once.
wait "${sshd_pid}"
