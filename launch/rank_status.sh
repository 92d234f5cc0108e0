#!/usr/bin/env bash
# What the ranks' exit statuses (launch/rank.sh) say about a Horovod run:
#   launch/rank_status.sh STATUS_DIR NUM_RANKS
# prints three lines for launch/horovod.sh:
#   failed <the rank that ended first with a status other than 0 and 143, naming the
#          signal that killed it; else the first rank without a status; else empty>
#   preempted <1 when a rank exited 143 (SIGTERM: checkpointed and stopped), else 0>
#   codes <every rank's status, "rank R: S" or "rank R: lost">
# A failing rank makes Horovod end the others, which then often exit non-zero too: the
# cause is the rank that ended first (the time each rank.sh recorded), not the lowest
# rank number, so the name does not depend on which status file was written first.
set -euo pipefail

dir=${1:?usage: rank_status.sh STATUS_DIR NUM_RANKS}
np=${2:?usage: rank_status.sh STATUS_DIR NUM_RANKS}
codes=() preempted=0 lost="" first_rank="" first_code="" first_time=""
for ((rank = 0; rank < np; rank++)); do
    code="lost" ended=""
    if [[ -r "${dir}/rank-${rank}" ]]; then read -r code ended <"${dir}/rank-${rank}" || true; fi
    [[ "${code}" =~ ^[0-9]+$ ]] || code="lost"
    codes+=("rank ${rank}: ${code}")
    case "${code}" in
        0) ;;
        143) preempted=1 ;;
        lost) lost="${lost:-rank ${rank} was lost (no exit status: its process, host or launcher died)}" ;;
        *)
            ended="${ended:-0}"
            if [[ -z "${first_rank}" ]] || ((ended < first_time)); then
                first_rank="${rank}" first_code="${code}" first_time="${ended}"
            fi
            ;;
    esac
done
failed="${lost}"
if [[ -n "${first_rank}" ]]; then
    failed="rank ${first_rank} exited with status ${first_code}"
    if ((first_code > 128)); then failed+=" (killed by SIG$(kill -l $((first_code - 128))))"; fi
fi
echo "failed ${failed}"
echo "preempted ${preempted}"
echo "codes ${codes[*]}"
