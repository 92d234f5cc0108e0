"""launch/horovod.sh: the command it prints, bad arguments, a lost rank (kill -9), SIGTERM,
and resuming by rerunning. Real `horovodrun -np 2 -H localhost:2 --gloo` runs."""

import os
import signal
import subprocess
import time

import pytest

from tests.launch.processes import SMALL_RUN, checkpoint_steps, config_flags, trainers, wait_for
from tests.training.runs import ROOT, env, summary

HOROVOD_SH = str(ROOT / "launch" / "horovod.sh")


def _start(workdir):
    command = [HOROVOD_SH, "-np", "2", "--gloo", "--", f"--workdir={workdir}"]
    command += config_flags(SMALL_RUN)
    return subprocess.Popen(
        command, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(process, timeout):
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        raise AssertionError(f"still running after {timeout}s:\n{out[-4000:]}") from None
    return process.returncode, out


def _resume_to_the_end(workdir, checkpoint_step):
    code, out = _finish(_start(workdir), 300)
    assert code == 0, out[-4000:]
    result = summary(workdir)
    assert result["step"] == SMALL_RUN["train.steps"]
    assert result["resumed_from_step"] == checkpoint_step, out[-3000:]
    assert f"ckpt-{checkpoint_step} at step {checkpoint_step}" in out
    assert not (workdir / ".launch").exists(), "exit-status files were left behind"


@pytest.mark.slow
def test_sigterm_then_kill_9_of_a_rank_and_each_rerun_resumes(tmp_path):
    workdir = tmp_path / "hvd"
    process = _start(workdir)
    wait_for(lambda: checkpoint_steps(workdir), 180, "a first checkpoint", process)
    process.send_signal(signal.SIGTERM)
    code, out = _finish(process, 120)
    assert code == 143, out[-4000:]
    assert "launch/horovod.sh: stopped with a checkpoint" in out
    # The command it ran, printed first.
    assert out.startswith(f"+ {ROOT}/.venv/bin/horovodrun -np 2 -H localhost:2 --gloo ")
    saved = checkpoint_steps(workdir)[-1]
    assert saved < SMALL_RUN["train.steps"]
    assert summary(workdir)["preempted"] is True

    process = _start(workdir)
    wait_for(lambda: checkpoint_steps(workdir)[-1] > saved, 180, "a new checkpoint", process)
    (rank_1,) = [pid for pid, e in trainers(process.pid).items() if e.get("HOROVOD_RANK") == "1"]
    os.kill(rank_1, signal.SIGKILL)
    killed_at = time.monotonic()
    code, out = _finish(process, 60)
    assert time.monotonic() - killed_at < 30, "the run took too long to end"
    assert f"ckpt-{saved} at step {saved}" in out
    assert code not in (0, 143), out[-3000:]
    assert "launch/horovod.sh: rank 1 exited with status 137 (killed by SIGKILL)" in out
    assert "rerunning resumes from the last checkpoint" in out
    assert not trainers(os.getpid()), "a rank outlived the launcher"
    _resume_to_the_end(workdir, checkpoint_steps(workdir)[-1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--", "--workdir=x"], "-np must be a positive integer, got ''"),
        (["-np", "two", "--", "--workdir=x"], "-np must be a positive integer, got 'two'"),
        (["-np", "2", "--bogus"], "unknown option '--bogus' (train flags go after --)"),
        (["-np", "2", "--"], "give --workdir=DIR among the train flags"),
        (["-np", "2", "--", "--workdir=x", "--distribution=mirrored"], "do not pass"),
        (["-np", "2", "--hostfile", "/nonexistent", "--", "--workdir=x"], "'/nonexistent'"),
    ],
)
def test_bad_arguments_are_refused_with_the_usage(args, message, tmp_path):
    result = subprocess.run(
        [HOROVOD_SH, *args], cwd=tmp_path, env=env(), capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "launch/horovod.sh -np N" in result.stderr
    assert not (tmp_path / "x").exists()
