"""A real `tensorboard` server on 127.0.0.1 for the tests, and what it serves."""

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request

from tests.training import runs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return json.loads(response.read())


def scalar_steps(logdir, tag: str, load_fast: str = "auto", timeout: float = 90) -> list[int]:
    """The steps TensorBoard serves for scalar `tag` of run "." in `logdir`, in order.

    `load_fast="auto"` is TensorBoard's default (its Rust data server when installed);
    "false" is its Python loader (EventAccumulator, purge_orphaned_data on). Polls until
    two successive answers agree, so a half-loaded directory is not mistaken for data.
    """
    port = _free_port()
    server = subprocess.Popen(
        [
            str(runs.BIN / "tensorboard"),
            f"--logdir={logdir}",
            "--host=127.0.0.1",
            f"--port={port}",
            "--reload_interval=1",
            f"--load_fast={load_fast}",
        ],
        env=runs.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    query = urllib.parse.urlencode({"run": ".", "tag": tag})
    previous = None
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                tags = _get(port, "/data/plugin/scalars/tags")
                if tag in tags.get(".", {}):
                    points = _get(port, f"/data/plugin/scalars/scalars?{query}")
                    steps = [point[1] for point in points]
                    if steps and steps == previous:
                        return steps
                    previous = steps
            except OSError:
                pass
            time.sleep(1.5)
        raise AssertionError(f"TensorBoard never served a stable {tag!r}: {previous}")
    finally:
        server.terminate()
        server.wait(timeout=30)
