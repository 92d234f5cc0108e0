"""Test-session set-up.

MirroredStrategy is tested without GPUs by splitting the CPU into logical devices,
which must happen before TensorFlow initialises its devices: here, at collection.
"""

import os
import sys

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


def pytest_collection_modifyitems(config, items):
    """Files that start processes (with a test marked slow) run first.

    `make test` hands whole files to two workers in collection order (pytest-xdist's
    --dist loadfile): with the long files queued first, the short ones fill the gaps at
    the end instead of one worker waiting alone on a long file. A file moves whole (its
    module fixtures are set up once), and the order within each group is the
    collection order (a stable sort), the same on every worker.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
