"""Test-session set-up.

MirroredStrategy is tested without GPUs by splitting the CPU into logical devices,
which must happen before TensorFlow initialises its devices: here, at collection.
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The trainers, launchers and predictors the tests start see what a user's install has:
# no scikit-learn. It is only a reference for the tests, yet Keras imports it at every
# `import tensorflow` when installed (1.7 s of every process's start). The hiding line is
# tests/hide_test_references.pth, which `make setup` puts in the venv; the test processes
# themselves, which inherit the variable under pytest-xdist, keep it importable.
os.environ["FOCAL_DIST_HIDE_TEST_REFERENCES"] = "1"
if "sklearn" in sys.modules and sys.modules["sklearn"] is None:
    del sys.modules["sklearn"]

import tensorflow as tf

NUM_LOGICAL_CPUS = 4

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * NUM_LOGICAL_CPUS
)


# Seconds each test file took in a full run (tests/record_durations.py writes it from a
# JUnit report): the longest files are handed out first.
DURATIONS = Path(__file__).with_name("durations.json")
# A file not in DURATIONS yet: one that starts processes (a test marked slow) is assumed
# to be long, any other short.
UNKNOWN_SLOW, UNKNOWN = 120.0, 1.0


def pytest_collection_modifyitems(config, items):
    """The longest test files run first.

    `make test` hands whole files to two workers in the order the queue holds them
    (pytest-xdist's `--dist loadfile --no-loadscope-reorder`; xdist's own reordering puts
    the files with the most tests first, which left the few long multi-process files
    for the end, one worker waiting alone on them). Longest first is the classic
    schedule for this: the short files fill the gaps at the end. A file moves whole (its
    module fixtures are set up once), and the order within it is the collection order
    (a stable sort), the same on every worker.
    """
    recorded = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}

    def seconds(item) -> float:
        name = item.path.relative_to(config.rootpath).as_posix()
        default = UNKNOWN_SLOW if item.path in slow_files else UNKNOWN
        return recorded.get(name, default)

    items.sort(key=lambda item: -seconds(item))
