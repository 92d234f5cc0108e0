"""A rate-limited loopback: a network namespace of our own whose `lo` is shaped by tbf.

Loopback moves gigabytes per second, so the cost of a gradient all-reduce, and how much
of it a step hides behind its backward pass, cannot be seen on it. Inside a fresh
network namespace the only device is a loopback of its own; a token-bucket filter on
it makes every connection between processes in that namespace as slow as a link of
`rate`:

    ip netns add NAME && ip -n NAME link set lo up
    ip netns exec NAME tc qdisc add dev lo root tbf rate 1gbit burst 1mb latency 200ms
    ip netns exec NAME <command>     # sees 127.0.0.1 through the shaped lo only
    ip netns del NAME

Only loopback traffic inside this namespace is touched: no other device, address or
namespace. tbf's burst must exceed lo's 64 KiB MTU (a smaller one drops every packet and
connections time out). Every rank sends through the one shaped device, so a 2-rank ring
all-reduce of S bytes moves 2S through it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time

UNSHAPED = "unshaped"


class CannotShapeError(RuntimeError):
    """This process cannot make a shaped namespace (not root, or iproute2 missing)."""


def check_can_shape() -> None:
    """Raises CannotShapeError saying what is missing to shape a loopback link."""
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        raise CannotShapeError(
            f"shaping a link needs `ip` and `tc` from iproute2; {' and '.join(missing)} not "
            "found on PATH (apt-get install iproute2)"
        )
    if os.geteuid() != 0:
        raise CannotShapeError(
            f"shaping a link needs root (ip netns add, tc qdisc); running as uid "
            f"{os.geteuid()}. Run as root, or pass --rates={UNSHAPED} for plain loopback"
        )


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode:
        raise CannotShapeError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")


def _stop_processes_inside(name: str) -> None:
    """Ends what is left of the processes started in namespace `name` (they are ours)."""
    listed = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    pids = [int(p) for p in listed.stdout.split()]
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if os.path.exists(f"/proc/{p}")]
            time.sleep(0.1)


@contextlib.contextmanager
def shaped_loopback(rate: str, *, burst: str = "1mb", latency: str = "200ms"):
    """Yields the command prefix that runs a command behind a loopback shaped to `rate`.

    `rate` is a tc rate ("1gbit", "2500mbit"), or "unshaped": no namespace, the prefix
    is empty and the command sees this machine's loopback. The namespace is deleted on
    exit, also after an error or Ctrl-C, and its leftover processes ended first.
    """
    if rate == UNSHAPED:
        yield []
        return
    check_can_shape()
    name = f"focal_dist_bench_{os.getpid()}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        shaping = ["tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", rate]
        shaping += ["burst", burst, "latency", latency]
        _ip("netns", "exec", name, *shaping)
        yield ["ip", "netns", "exec", name]
    finally:
        _stop_processes_inside(name)
        subprocess.run(["ip", "netns", "del", name], check=False)
