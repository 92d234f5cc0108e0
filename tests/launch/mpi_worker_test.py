"""launch/mpi_worker.sh, the MPIJob worker's PID 1: the pod's SIGTERM reaches the trainer.

sshd is stood in for by `sleep` (no sshd here); the "trainer" is a Python process whose
command line carries a unique marker, as the real one carries `focal_dist.train`."""

import signal
import subprocess
import sys
import time
import uuid

from tests.launch.processes import alive, wait_for
from tests.training.runs import ROOT, env

TRAINER = """
import signal, sys, time
def stop(*_):
    open(sys.argv[1], "w").write("got SIGTERM")
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
open(sys.argv[1] + ".ready", "w").close()
time.sleep(120)
"""


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def test_sigterm_reaches_the_trainer_and_the_worker_exits_143(tmp_path):
    marker = f"focal-dist-test-{uuid.uuid4().hex}"
    received = tmp_path / "received"
    trainer = subprocess.Popen([sys.executable, "-c", TRAINER, str(received), marker])
    # A SIGTERM that arrives before the stand-in has installed its handler kills it with
    # -15 (a loaded CI machine showed this); the real trainer installs it at start too.
    wait_for(lambda: (tmp_path / "received.ready").exists(), 30, "the trainer's handler")
    worker = subprocess.Popen(
        [str(ROOT / "launch" / "mpi_worker.sh")],
        env=env(
            FOCAL_DIST_SSHD="sleep 120",
            FOCAL_DIST_TRAINER_PATTERN=marker,
            FOCAL_DIST_STOP_SECONDS="20",
        ),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        sshd = wait_for(lambda: _children(worker.pid), 10, "the sshd stand-in")
        assert worker.poll() is None, "the worker entry point should keep running"
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
        assert worker.returncode == 143, err
        assert f"SIGTERM: asking the trainer ('{marker}') to checkpoint" in err
        assert trainer.wait(timeout=5) == 143
        assert received.read_text() == "got SIGTERM"
        # sshd (here: sleep) is stopped too.
        wait_for(lambda: not any(alive(pid) for pid in sshd), 5, "the sshd stand-in to stop")
    finally:
        for process in (trainer, worker):
            if process.poll() is None:
                process.kill()


def test_without_a_trainer_sigterm_still_ends_the_worker_at_once():
    worker = subprocess.Popen(
        [str(ROOT / "launch" / "mpi_worker.sh")],
        env=env(FOCAL_DIST_SSHD="sleep 120", FOCAL_DIST_TRAINER_PATTERN=uuid.uuid4().hex),
    )
    time.sleep(1)
    start = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 143
    assert time.monotonic() - start < 5
