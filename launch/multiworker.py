"""Starts N MultiWorkerMirroredStrategy workers on this machine, each with its TF_CONFIG.

    python launch/multiworker.py --num_workers=2 -- \
        python -m focal_dist.train --distribution=multiworker --workdir=runs/mw

Ports are free ports on 127.0.0.1. Each worker's output is prefixed with its index. If
a worker fails, the others are stopped and the launcher exits with its status; SIGTERM
and SIGINT are passed on to the workers (so the chief can save a checkpoint).
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


def _relay(stream, prefix: str, sink) -> None:
    for line in iter(stream.readline, ""):
        sink.write(f"{prefix}{line}")
        sink.flush()


def launch(num_workers: int, command: list[str], env: dict | None = None) -> int:
    processes = []
    threads = []
    for i, config in enumerate(tf_configs(num_workers)):
        worker_env = dict(os.environ if env is None else env, TF_CONFIG=json.dumps(config))
        process = subprocess.Popen(
            command, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        processes.append(process)
        thread = threading.Thread(
            target=_relay, args=(process.stdout, f"[worker {i}] ", sys.stdout), daemon=True
        )
        thread.start()
        threads.append(thread)

    def forward(signum, _frame):
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    while any(p.poll() is None for p in processes):
        failed = [p for p in processes if p.poll() not in (None, 0)]
        if failed:
            status = failed[0].returncode
            for process in processes:
                if process.poll() is None:
                    process.terminate()
            break
        time.sleep(0.2)
    for process in processes:
        process.wait()
        status = status or process.returncode
    for thread in threads:
        thread.join(timeout=5)
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the worker command after --")
    if args.num_workers < 1:
        parser.error(f"--num_workers must be >= 1, got {args.num_workers}")
    return launch(args.num_workers, command)


if __name__ == "__main__":
    sys.exit(main())
