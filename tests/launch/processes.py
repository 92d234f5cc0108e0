"""Finding the trainer processes a launcher started, and waiting on a run's files."""

import os
import time
from pathlib import Path

from tests.training.runs import ROOT, TINY

SMALL_RUN = {
    **TINY,
    # Long enough to be killed mid-run, short enough to resume to the end quickly.
    "train.steps": 300,
    "train.steps_per_loop": 10,
    "train.checkpoint_every": 20,
    "train.log_every": 50,
    "data.num_features": 32,
    "data.synthetic.num_train": 4096,
    "data.synthetic.num_eval": 1024,
}


def config_flags(overrides: dict) -> list[str]:
    return [f"--config={ROOT / 'configs' / 'default.py'}"] + [
        f"--config.{key}={value}" for key, value in overrides.items()
    ]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def trainers(root_pid: int) -> dict[int, dict]:
    """{pid: environ} of every `python -m focal_dist.train` process below root_pid."""
    found, stack = {}, [root_pid]
    while stack:
        pid = stack.pop()
        children = _children(pid)
        stack += children
        for child in children:
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                # The trainer itself, not the shells and launchers whose arguments name it.
                if (
                    b"focal_dist.train" not in cmdline
                    or b"python" not in Path(cmdline[0].decode()).name.encode()
                ):
                    continue
                raw = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            env = dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
            found[child] = env
    return found


def wait_for(predicate, timeout: float, what: str, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the run ended ({process.returncode}) before {what}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def checkpoint_steps(workdir) -> list[int]:
    folder = Path(workdir) / "checkpoints"
    return sorted(int(p.name.split("-")[1].split(".")[0]) for p in folder.glob("ckpt-*.index"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()
