"""Where a training step spends its time: ours against fit, from TensorFlow's profiler.

Each loop (bench/train_throughput.py's, same cached batches, default strategy) runs
--steps steps under `tf.profiler.experimental` into --logdir (viewable with the
TensorBoard profile plugin). The trace (XSpace protobuf) is then read back here: on
TensorFlow's compute and tf.data threads, each event's self time (its duration less its
children's), summed by TF op type or runtime activity, in µs per step; on the Python
thread, the calls into TensorFlow functions per step (host round trips).

    .venv/bin/python bench/profile_steps.py [--k=1] [--jit] [--steps=300] [--top=12]
"""

from __future__ import annotations

import collections
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import tensorflow as tf
import train_throughput as tt
from absl import app, flags
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from focal_dist.distribute import get_backend

FLAGS = flags.FLAGS
flags.DEFINE_bool("jit", False, "fit jit_compile=True and ours train.jit_compile=True.")
flags.DEFINE_integer("top", 12, "Rows per loop.")
flags.DEFINE_string("logdir", "/tmp/focal_dist_profile", "Where the traces are written.")

_IGNORED = ("ThreadpoolListener",)


def _self_times(line, metadata) -> collections.Counter:
    """Self time (ps) per event name on one thread: nested events are subtracted."""
    totals = collections.Counter()
    stack = []  # [end_ps, name, children_ps, duration_ps]
    events = sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps))

    def close(entry, duration):
        totals[entry[1]] += duration - entry[2]

    for event in events:
        start, duration = event.offset_ps, event.duration_ps
        while stack and stack[-1][0] <= start:
            entry = stack.pop()
            close(entry, entry[3])
        name = metadata[event.metadata_id].name
        if name.startswith(_IGNORED):
            continue
        if stack:
            stack[-1][2] += duration
        stack.append([start + duration, name, 0, duration])
    while stack:
        entry = stack.pop()
        close(entry, entry[3])
    return totals


def _category(name: str) -> str:
    # TF ops are "scope/name:Type"; runtime activities ("ExecutorState::Process") are not.
    head, _, op_type = name.rpartition(":")
    if head and not head.endswith(":") and op_type and " " not in op_type:
        return "op " + op_type
    if name.startswith("EagerLocalExecute: "):
        return "host call " + name.split(": ", 1)[1]
    return "runtime " + name[:60]


def profile(run, name: str) -> tuple[collections.Counter, collections.Counter]:
    logdir = os.path.join(FLAGS.logdir, name)
    tf.profiler.experimental.start(logdir)
    run(FLAGS.steps)
    tf.profiler.experimental.stop()
    path = sorted(glob.glob(os.path.join(logdir, "plugins/profile/*/*.xplane.pb")))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    self_time, calls = collections.Counter(), collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_"):
                # The Python (calling) thread mostly waits in its calls: count them only.
                for event in line.events:
                    event_name = plane.event_metadata[event.metadata_id].name
                    if event_name.startswith("EagerLocalExecute: "):
                        calls[_category(event_name)] += 1
                continue
            for event_name, ps in _self_times(line, plane.event_metadata).items():
                self_time[_category(event_name)] += ps
    return self_time, calls


def main(argv):
    del argv
    backend = get_backend("default")
    examples = tt.in_memory_examples()
    k, steps = FLAGS.k, FLAGS.steps
    loops = {
        "fit": tt.keras_fit(backend.strategy, k, FLAGS.jit, examples),
        "ours": tt.ours(backend, k, FLAGS.jit, examples),
    }
    print(
        f"default strategy, MLP {FLAGS.hidden_units}, batch {FLAGS.global_batch_size}, "
        f"{steps} steps, {'XLA' if FLAGS.jit else 'graph'}, spe = spl = {k}; traces in "
        f"{FLAGS.logdir}; load average {os.getloadavg()[0]:.1f}"
    )
    for name, run in loops.items():
        self_time, calls = profile(run, name)
        total = sum(self_time.values())
        print(f"\n{name}: {total / steps / 1e6:,.0f} µs/step busy on TF's threads (compute, data)")
        print("| activity (self time) | µs/step | share |\n| --- | --- | --- |")
        for category, ps in self_time.most_common(FLAGS.top):
            print(f"| {category} | {ps / steps / 1e6:,.1f} | {ps / total:.0%} |")
        for call, count in calls.items():
            print(f"host calls per step ({call}): {count / steps:.3f}")


if __name__ == "__main__":
    app.run(main)
