"""launch/multiworker.py: a lost worker ends the run quickly and clearly; SIGTERM is passed
on; rerunning resumes. Real 2-process MultiWorkerMirroredStrategy runs on 127.0.0.1."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.launch.processes import SMALL_RUN, checkpoint_steps, config_flags, trainers, wait_for
from tests.training.runs import ROOT, env, summary

LAUNCHER = [sys.executable, str(ROOT / "launch" / "multiworker.py"), "--num_workers=2"]


def _start(workdir, *launcher_flags):
    command = [
        *LAUNCHER,
        *launcher_flags,
        "--",
        sys.executable,
        "-m",
        "focal_dist.train",
        "--distribution=multiworker",
        f"--workdir={workdir}",
        *config_flags(SMALL_RUN),
    ]
    return subprocess.Popen(
        command, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(process, timeout):
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        raise AssertionError(f"launcher still running after {timeout}s:\n{out[-4000:]}") from None
    return process.returncode, out


def _worker_pid(process, index: int) -> int:
    def find():
        for pid, worker_env in trainers(process.pid).items():
            if f'"index": {index}' in worker_env.get("TF_CONFIG", ""):
                return pid
        return None

    return wait_for(find, 60, f"worker {index} to start", process)


def _resume_to_the_end(workdir, checkpoint_step):
    code, out = _finish(_start(workdir), 300)
    assert code == 0, out[-4000:]
    result = summary(workdir)
    assert result["step"] == SMALL_RUN["train.steps"]
    assert result["resumed_from_step"] == checkpoint_step, out[-3000:]
    assert f"ckpt-{checkpoint_step} at step {checkpoint_step}" in out


@pytest.mark.slow
def test_sigterm_then_kill_9_of_a_worker_and_each_rerun_resumes(tmp_path):
    workdir = tmp_path / "mw"
    # SIGTERM to the launcher: passed on, a checkpoint, 143 (only a finished run exits 0).
    process = _start(workdir)
    wait_for(lambda: checkpoint_steps(workdir), 180, "a first checkpoint", process)
    process.send_signal(signal.SIGTERM)
    code, out = _finish(process, 150)
    assert "SIGTERM: passing it on to the workers" in out
    assert code == 143, out[-4000:]
    saved = checkpoint_steps(workdir)[-1]
    assert saved < SMALL_RUN["train.steps"]
    assert summary(workdir)["preempted"] is True

    # The rerun resumes; kill -9 of worker 1 ends it quickly, naming the worker.
    process = _start(workdir, "--kill_seconds=10")
    wait_for(lambda: checkpoint_steps(workdir)[-1] > saved, 180, "a new checkpoint", process)
    os.kill(_worker_pid(process, 1), signal.SIGKILL)
    killed_at = time.monotonic()
    code, out = _finish(process, 60)
    assert time.monotonic() - killed_at < 30, "the launcher took too long to stop"
    assert f"ckpt-{saved} at step {saved}" in out
    assert code == 128 + signal.SIGKILL, out[-3000:]
    assert "multiworker: worker 1 (pid" in out
    assert "killed by SIGKILL; stopping the other workers" in out
    assert not trainers(os.getpid()), "a worker outlived its launcher"
    _resume_to_the_end(workdir, checkpoint_steps(workdir)[-1])


def test_bad_arguments_are_refused_before_anything_starts():
    for args, message in [
        (["--num_workers=0", "--", "true"], "--num_workers must be >= 1, got 0"),
        (["--num_workers=2"], "give the worker command after --"),
        (["--kill_seconds=0", "--", "true"], "--kill_seconds must be > 0, got 0.0"),
    ]:
        result = subprocess.run(
            [sys.executable, str(ROOT / "launch" / "multiworker.py"), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 2
        assert message in result.stderr


def test_a_failing_worker_stops_the_other_one_and_the_status_names_it(tmp_path):
    # Worker 1 fails at once; worker 0 would sleep for a minute.
    script = (
        "import json, os, sys, time\n"
        "i = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
        "sys.exit(3) if i == 1 else time.sleep(60)\n"
    )
    start = time.monotonic()
    result = subprocess.run(
        [*LAUNCHER, "--kill_seconds=2", "--", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert time.monotonic() - start < 15
    assert result.returncode == 3
    assert "worker 1 (pid" in result.stdout
    assert "exited with status 3; stopping the other workers" in result.stdout
