"""The Python entry point, run the way the README shows it: examples/own_model.py.

A user's own convolutional Keras model and examples, trained by `train_task` under
default, mirrored (2 logical CPUs) and horovodrun -np 2: each run writes the CLI's
checkpoints, TensorBoard events, summary.json and export, and the distributed runs end
with the single-device weights (1000 examples, global batch 64: the short last batch
of 40 leaves replicas uneven).
"""

import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.training import runs

pytestmark = pytest.mark.slow

EXAMPLE = str(runs.ROOT / "examples" / "own_model.py")


def _train(distribution, workdir):
    command = runs.distributed_command(distribution, [EXAMPLE, f"--workdir={workdir}"])
    if distribution == "mirrored":
        command += ["--distribution=mirrored", "--num_cpu_devices=2"]
    return runs.run(command)


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("own_default")
    result = _train("default", workdir)
    return workdir, result


def test_own_model_example_writes_what_the_cli_writes(single_device):
    workdir, result = single_device
    summary = runs.summary(workdir)
    assert summary["step"] == 60
    assert summary["complete"] is True
    assert len(summary["train_losses"]) == 60
    assert summary["train_losses"][-1] < summary["train_losses"][0]
    assert summary["eval"]["num_examples"] == 500
    assert re.search(r"step 60 eval PR-AUC 0\.\d+", result.stdout), result.stdout[-2000:]
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-60")
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    exported = runs.final_weights(workdir)
    assert [w.shape for w in exported] == [(3, 3, 1, 8), (8,), (8, 1), (1,)]


@pytest.mark.parametrize("distribution", ["mirrored", "horovod"])
def test_own_model_example_distributed_ends_with_the_single_device_weights(
    distribution, single_device, tmp_path
):
    reference_dir, _ = single_device
    _train(distribution, tmp_path)
    summary, reference = runs.summary(tmp_path), runs.summary(reference_dir)
    assert summary["num_replicas"] == 2
    np.testing.assert_allclose(summary["train_losses"], reference["train_losses"], rtol=1e-5)
    for ours, theirs in zip(
        runs.final_weights(tmp_path), runs.final_weights(reference_dir), strict=True
    ):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert Path(tmp_path / "export" / "model.keras").exists()


def test_readme_shows_the_own_model_example_verbatim():
    readme = (runs.ROOT / "README.md").read_text()
    code = Path(EXAMPLE).read_text()
    assert f"```python\n# examples/own_model.py\n{code}```" in readme
