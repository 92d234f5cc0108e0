"""Segmentation trains exactly like one device on every backend.

`--config=segmentation` on the synthetic masks: images whose valid pixels range from
none to all of them, 27 training images in global batches of 8 (the short last batch
of 3 gives 4 mirrored replicas 2, 1, 0 and 0 images), a U-Net with synchronized
BatchNormalization, the per-pixel focal term plus the per-image Dice term. Under
mirrored x4, multiworker x2 and horovod -np 2: per-step losses and final weights equal
one device's to 1e-5, and so do the eval metrics from the all-reduced confusion matrix.
"""

import numpy as np
import pytest

from tests.training import runs

pytestmark = pytest.mark.slow

CONFIG = {
    "train.steps": 8,
    "train.global_batch_size": 8,
    "train.steps_per_loop": 4,
    "train.eval_every": 0,
    "train.checkpoint_every": 4,
    "train.deterministic": True,
    "data.image_size": 16,
    "data.synthetic.num_train": 27,
    "data.synthetic.num_eval": 10,
    "data.shuffle_buffer": 27,
    "model.widths": "(4,8)",
    "model.sync_batch_norm": True,
    "loss.dice_weight": 0.5,
    "optimizer.name": "sgd",
    "optimizer.learning_rate": 0.1,
    "optimizer.warmup_steps": 0,
    "optimizer.decay": "constant",
    "task.eval_images": 0,
}
SEGMENTATION = "focal_dist/configs/segmentation.py"


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("segmentation_default")
    runs.run(runs.train_command("default", workdir, CONFIG, config=SEGMENTATION))
    return runs.summary(workdir), runs.final_weights(workdir)


@pytest.mark.parametrize("distribution", ["mirrored", "multiworker", "horovod"])
def test_segmentation_with_uneven_valid_pixels_matches_one_device(
    distribution, single_device, tmp_path
):
    reference_summary, reference_weights = single_device
    runs.run(runs.train_command(distribution, tmp_path, CONFIG, config=SEGMENTATION))
    summary = runs.summary(tmp_path)
    assert summary["num_replicas"] == {"mirrored": 4, "multiworker": 2, "horovod": 2}[distribution]
    np.testing.assert_allclose(
        summary["train_losses"], reference_summary["train_losses"], rtol=1e-5
    )
    weights = runs.final_weights(tmp_path)
    assert len(weights) == len(reference_weights)
    for ours, reference in zip(weights, reference_weights, strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
    for name in ("miou", "pixel_accuracy", "num_pixels", "loss"):
        assert summary["eval"][name] == pytest.approx(reference_summary["eval"][name], rel=1e-5)
    np.testing.assert_allclose(summary["eval"]["iou"], reference_summary["eval"]["iou"], rtol=1e-5)
    assert reference_summary["train_losses"][-1] < reference_summary["train_losses"][0]
