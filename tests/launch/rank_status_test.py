"""launch/rank_status.sh: the rank named for a failed Horovod run is the one whose
trainer ended first with a failure, whatever the rank numbers or the order in which
launch/rank.sh wrote the status files; a rank without a status is named as lost."""

import subprocess

import pytest

from tests.training.runs import ROOT

SCRIPT = ROOT / "launch" / "rank_status.sh"


def _report(tmp_path, statuses: dict[int, str], num_ranks: int = 2) -> dict[str, str]:
    for rank, text in statuses.items():
        (tmp_path / f"rank-{rank}").write_text(text + "\n")
    out = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path), str(num_ranks)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split(" ", 1) if " " in line else (line, "") for line in out.splitlines())


@pytest.mark.parametrize(
    ("statuses", "named"),
    [
        # Rank 1 killed first; rank 0 then fails on the broken collective (exit 1).
        (
            {0: "1 2000000000", 1: "137 1000000000"},
            "rank 1 exited with status 137 (killed by SIGKILL)",
        ),
        # The same with the ranks' roles swapped.
        (
            {0: "137 1000000000", 1: "1 2000000000"},
            "rank 0 exited with status 137 (killed by SIGKILL)",
        ),
        # A Python error in rank 1 first; Horovod then kills rank 0.
        ({0: "137 5000000000", 1: "1 4000000000"}, "rank 1 exited with status 1"),
        # The killed rank recorded; the other was killed before it could record.
        ({1: "137 1000000000"}, "rank 1 exited with status 137 (killed by SIGKILL)"),
        (
            {0: "0 1", 1: "garbage"},
            "rank 1 was lost (no exit status: its process, host or launcher died)",
        ),
    ],
)
def test_the_rank_that_failed_first_is_named(tmp_path, statuses, named):
    report = _report(tmp_path, statuses)
    assert report["failed"] == named


def test_every_rank_checkpointed_and_stopped_is_a_preemption_not_a_failure(tmp_path):
    report = _report(tmp_path, {0: "143 10", 1: "0 20", 2: "143 5"}, num_ranks=3)
    assert report["failed"] == ""
    assert report["preempted"] == "1"
    assert report["codes"] == "rank 0: 143 rank 1: 0 rank 2: 143"


def test_a_finished_run_reports_nothing(tmp_path):
    report = _report(tmp_path, {0: "0 10", 1: "0 20"})
    assert report == {"failed": "", "preempted": "0", "codes": "rank 0: 0 rank 1: 0"}
