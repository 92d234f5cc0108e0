"""The README's examples (examples/*.py) run as written and keep their promise.

The README shows each file verbatim (checked here, so text and tested code cannot
drift). The tf.distribute examples train on 2 MirroredStrategy replicas (logical CPUs)
and end with the weights of the same code on one device; the Horovod example runs under
`horovodrun -np 2` and ends with the weights of one process on the whole batch.
"""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tensorflow as tf

from tests.training import runs

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NAMES = [
    "mirrored_custom_loop",
    "compile_fit",
    "horovod_loop",
    "segmentation_fit",
    "class_weights_histogram",
]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mirrored():
    return tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )


def _assert_same_weights(ours, reference, rtol):
    for got, want in zip(ours, reference, strict=True):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_readme_shows_the_example_file_verbatim(name):
    readme = (ROOT / "README.md").read_text()
    code = (EXAMPLES / f"{name}.py").read_text()
    assert f"```python\n# examples/{name}.py\n{code}```" in readme


def test_mirrored_custom_loop_on_two_replicas_ends_with_the_single_device_weights():
    example = _load("mirrored_custom_loop")
    mirrored = example.train(_mirrored()).get_weights()
    single = example.train(tf.distribute.get_strategy()).get_weights()
    _assert_same_weights(mirrored, single, rtol=1e-5)


@pytest.mark.parametrize("name", ["compile_fit", "segmentation_fit"])
def test_fit_example_on_two_replicas_reports_and_trains_like_one_device(name):
    example = _load(name)
    mirrored_model, mirrored_history = example.train(_mirrored())
    single_model, single_history = example.train(tf.distribute.get_strategy())
    _assert_same_weights(mirrored_model.get_weights(), single_model.get_weights(), rtol=1e-5)
    losses = single_history.history["loss"]
    np.testing.assert_allclose(mirrored_history.history["loss"], losses, rtol=1e-5)
    assert losses[-1] < losses[0]


def _h5_arrays(path):
    arrays = {}

    def collect(name, item):  # returns None: visititems stops at any other value
        if isinstance(item, h5py.Dataset):
            arrays[name] = item[()]

    with h5py.File(path) as handle:
        handle.visititems(collect)
    return arrays


@pytest.mark.slow
def test_horovod_loop_on_two_ranks_ends_with_the_weights_of_one_process_on_the_whole_batch(
    tmp_path,
):
    script = str(EXAMPLES / "horovod_loop.py")
    one, two = tmp_path / "one_process", tmp_path / "two_ranks"
    one.mkdir(), two.mkdir()
    single = subprocess.run(
        [sys.executable, script],
        cwd=one,
        env=runs.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    command = [str(runs.BIN / "horovodrun"), "-np", "2", "-H", "localhost:2", "--gloo"]
    command += [sys.executable, script]
    distributed = subprocess.run(
        command, cwd=two, env=runs.env(), capture_output=True, text=True, timeout=300
    )
    assert distributed.returncode == 0, distributed.stdout[-3000:] + distributed.stderr[-3000:]
    assert distributed.stdout.count("epoch 2:") == 1  # rank 0 prints alone
    reference = _h5_arrays(one / "horovod_loop.weights.h5")
    ours = _h5_arrays(two / "horovod_loop.weights.h5")
    assert sorted(ours) == sorted(reference)
    assert len(reference) == 4
    for name, want in reference.items():
        np.testing.assert_allclose(ours[name], want, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [1, 2], ids=["python", "horovodrun-np2"])
def test_class_weights_example_counts_every_label_once_on_every_rank(ranks):
    script = str(EXAMPLES / "class_weights_histogram.py")
    if ranks == 1:
        command = [sys.executable, script]
    else:
        command = [str(runs.BIN / "horovodrun"), "-np", "2", "-H", "localhost:2", "--gloo"]
        command += [sys.executable, script, "horovod"]
    result = subprocess.run(
        command, cwd=ROOT, env=runs.env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    printed = re.findall(r"counts (\[.*?\]) weights (\[.*?\]) alpha (\S+)", result.stdout)
    assert len(printed) == ranks, result.stdout[-3000:]
    # Independent count and formulas (NumPy, float64): the labels the example builds.
    labels = (np.arange(1000) % 100 == 0).astype(np.int64)
    counts = np.bincount(labels, minlength=2)
    effective = (1 - 0.999) / (1 - 0.999 ** counts.astype(np.float64))
    weights = effective * counts.sum() / (counts * effective).sum()  # sum_k n_k w_k = N
    for line_counts, line_weights, line_alpha in printed:
        assert json.loads(line_counts) == counts.tolist()  # each rank sees all, not 2x
        np.testing.assert_allclose(json.loads(line_weights), weights, rtol=1e-12)
        assert float(line_alpha) == pytest.approx(counts[0] / counts.sum())
