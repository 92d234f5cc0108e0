"""`train.profile_steps`: a profiler trace of exactly the chosen steps, shown by TensorBoard.

Read back independently: the XSpace protobuf TensorFlow's profiler wrote (one input
`GetNext` per step on one replica, one host call per `tf.function` call, counted from
the schedule by hand), and a real `tensorboard` process with the profile plugin serving
the run and its tools.
"""

import collections
import gzip
import json
import socket
import subprocess
import time
import urllib.request

import pytest
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from tests.training import runs

pytestmark = pytest.mark.slow

FIRST, LAST = 21, 30
CONFIG = {
    "train.steps": 40,
    "train.steps_per_loop": 8,
    "train.eval_every": 0,
    "train.profile_steps": f"({FIRST},{LAST})",
    "data.synthetic.num_train": 2048,
    "data.synthetic.num_eval": 256,
}
# Calls of 8 steps ending early on the range's ends: 1-8, 9-16, 17-20 | 21-28, 29-30 | ...
CALLS_IN_RANGE = 2


def _events(path) -> collections.Counter:
    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    counts = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                counts[plane.event_metadata[event.metadata_id].name] += 1
    return counts


def _serves_profile(logdir, timeout=90) -> tuple[list, list]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(runs.BIN / "tensorboard"), f"--logdir={logdir}", "--host=127.0.0.1", f"--port={port}"],
        env=runs.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def get(path):
        url = f"http://127.0.0.1:{port}/data/plugin/profile/{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
        # The profile plugin gzips its answers whatever the request accepts.
        return json.loads(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)

    try:
        deadline = time.time() + timeout
        while True:
            try:
                profile_runs = get("runs")
                if profile_runs:
                    return profile_runs, get(f"run_tools?run={profile_runs[0]}")
            except OSError:
                pass
            assert time.time() < deadline, "TensorBoard never served a profile run"
            time.sleep(1.5)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("distribution", ["default", "horovod"])
def test_profile_steps_traces_exactly_those_steps_on_the_chief(tmp_path, distribution):
    runs.run(runs.train_command(distribution, tmp_path, CONFIG))
    traces = sorted((tmp_path / "tensorboard" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1, traces  # the chief (rank 0) only
    events = _events(traces[0])
    assert events["IteratorGetNextOp::DoCompute"] == LAST - FIRST + 1, events.most_common(20)
    calls = sum(n for name, n in events.items() if "__inference__train_loop" in name)
    assert calls == CALLS_IN_RANGE, events.most_common(20)
    assert runs.summary(tmp_path)["step"] == 40
    if distribution == "default":
        profile_runs, tools = _serves_profile(tmp_path / "tensorboard")
        assert profile_runs == [traces[0].parent.name]
        assert any(tool.startswith("trace_viewer") for tool in tools), tools
