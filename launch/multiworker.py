"""Starts N MultiWorkerMirroredStrategy workers on this machine, each with its TF_CONFIG.

    python launch/multiworker.py --num_workers=2 -- \
        .venv/bin/python -m focal_dist.train --distribution=multiworker --workdir=runs/mw

TF_CONFIG has the training operator's layout ({"cluster": {"worker": [...]}, "task":
{"type": "worker", "index": i}}) with free ports on 127.0.0.1. Each worker's output is
prefixed with `[worker i]`.

Exit status and stopping, so that a run never hangs on a lost peer:
- all workers exit 0: 0 (the run finished);
- SIGTERM or SIGINT to the launcher is passed on to every worker, and so is a worker's
  own exit with 143 (it was preempted: every worker agrees to stop, the chief saves);
  the launcher then waits up to --stop_seconds and exits 143;
- any other failure of a worker (an error, a crash, kill -9) stops the others at once
  (SIGTERM, then SIGKILL after --kill_seconds: they may be blocked in a collective with
  the dead worker) and exits non-zero, naming the worker. Rerunning resumes from the
  last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

PREEMPTED = 128 + signal.SIGTERM  # 143: the trainer's "checkpointed, run me again"


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(num_workers: int) -> list[dict]:
    workers = [f"127.0.0.1:{port}" for port in free_ports(num_workers)]
    return [
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
        for i in range(num_workers)
    ]


def describe(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"


def exit_status(returncode: int) -> int:
    """A shell's convention: a worker killed by signal s gives 128 + s."""
    return 128 - returncode if returncode < 0 else returncode


def _relay(stream, prefix: str, sink) -> None:
    for line in iter(stream.readline, ""):
        sink.write(f"{prefix}{line}")
        sink.flush()


class Workers:
    """The worker processes of one run and the launcher's decisions about them."""

    def __init__(self, command: list[str], num_workers: int, env: dict | None = None):
        self.processes: list[subprocess.Popen] = []
        self.threads = []
        for i, config in enumerate(tf_configs(num_workers)):
            worker_env = dict(os.environ if env is None else env, TF_CONFIG=json.dumps(config))
            process = subprocess.Popen(
                command, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            self.processes.append(process)
            thread = threading.Thread(
                target=_relay, args=(process.stdout, f"[worker {i}] ", sys.stdout), daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def signal_running(self, signum: int) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signum)

    def wait_all(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if all(p.poll() is not None for p in self.processes):
                return True
            time.sleep(0.1)
        return False

    def kill_running(self, why: str) -> None:
        for i, process in enumerate(self.processes):
            if process.poll() is None:
                print(f"multiworker: worker {i} (pid {process.pid}) {why}; killing it", flush=True)
                process.kill()
        for process in self.processes:
            process.wait()

    def close(self) -> None:
        for thread in self.threads:
            thread.join(timeout=5)


def launch(
    num_workers: int,
    command: list[str],
    env: dict | None = None,
    stop_seconds: float = 120.0,
    kill_seconds: float = 10.0,
) -> int:
    """Runs the workers; returns the launcher's exit status (see the module docstring)."""
    workers = Workers(command, num_workers, env)
    stop_requested = threading.Event()

    def forward(signum, _frame):
        print(
            f"multiworker: {signal.Signals(signum).name}: passing it on to the workers", flush=True
        )
        stop_requested.set()
        workers.signal_running(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _supervise(workers, stop_requested, stop_seconds, kill_seconds)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        workers.close()


def _supervise(workers: Workers, stop_requested, stop_seconds: float, kill_seconds: float) -> int:
    processes = workers.processes
    while not stop_requested.is_set():
        codes = [p.poll() for p in processes]
        failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0, PREEMPTED)]
        if failed:
            index, code = failed[0]
            print(
                f"multiworker: worker {index} (pid {processes[index].pid}) {describe(code)}; "
                "stopping the other workers",
                flush=True,
            )
            workers.signal_running(signal.SIGTERM)
            if not workers.wait_all(kill_seconds):
                workers.kill_running(f"still running {kill_seconds:g}s after worker {index} failed")
            return exit_status(code)
        if PREEMPTED in codes:
            print(
                f"multiworker: worker {codes.index(PREEMPTED)} was preempted; stopping all",
                flush=True,
            )
            stop_requested.set()
            workers.signal_running(signal.SIGTERM)
        elif all(c is not None for c in codes):
            return 0
        time.sleep(0.1)
    if not workers.wait_all(stop_seconds):
        workers.kill_running(f"did not stop within {stop_seconds:g}s of SIGTERM")
    codes = [p.returncode for p in processes]
    if all(c == 0 for c in codes):
        return 0  # the run finished before the signal took effect
    if all(c in (0, PREEMPTED) for c in codes):
        return PREEMPTED
    index = next(i for i, c in enumerate(codes) if c not in (0, PREEMPTED))
    print(f"multiworker: worker {index} {describe(codes[index])} while stopping", flush=True)
    return exit_status(codes[index])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument(
        "--stop_seconds", type=float, default=120.0, help="after SIGTERM, wait this long"
    )
    parser.add_argument(
        "--kill_seconds", type=float, default=10.0, help="after a worker failed, wait this long"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the worker command after --")
    if args.num_workers < 1:
        parser.error(f"--num_workers must be >= 1, got {args.num_workers}")
    for name in ("stop_seconds", "kill_seconds"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be > 0, got {getattr(args, name)}")
    return launch(args.num_workers, command, None, args.stop_seconds, args.kill_seconds)


if __name__ == "__main__":
    sys.exit(main())
