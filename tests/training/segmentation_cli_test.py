"""`python -m focal_dist.train --config=segmentation` as a user runs it, on a small
folder of PNG images and masks: summary.json holds eval.iou (one per class), eval.miou
and eval.dice, TensorBoard the per-class scalars and the picture panel; a bad mask stops
the run before any checkpoint, naming the file."""

import numpy as np
import pytest
import tensorflow as tf

from tests.data import segmentation_fixtures as fx
from tests.training import runs

TINY = {
    "task.num_classes": fx.CLASSES,
    "task.eval_images": 2,
    "data.source": "segmentation_folder",
    "data.image_size": 32,
    "data.channels": 3,
    "model.widths": "(4,8)",
    "train.steps": 4,
    "train.steps_per_loop": 2,
    "train.global_batch_size": 4,
    "train.eval_every": 2,
    "train.checkpoint_every": 2,
}


def _command(workdir, folder, eval_folder, **overrides):
    fields = {**TINY, "data.path": folder, "data.eval_path": eval_folder, **overrides}
    return runs.train_command(
        "default", workdir, fields, config="focal_dist/configs/segmentation.py"
    )


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("segmentation_cli")
    return fx.write_folder(root / "train", 10), fx.write_folder(root / "eval", 5, seed=1)


def test_the_cli_trains_a_unet_on_a_folder_and_reports_iou_and_dice(folders, tmp_path):
    result = runs.run(_command(tmp_path, *folders))
    summary = runs.summary(tmp_path)
    assert summary["step"] == 4
    metrics = summary["eval"]
    # The last line says what segmentation measures, not a classifier's empty PR-AUC.
    done = [line for line in result.stderr.splitlines() if "done at step 4" in line]
    assert done, result.stderr[-2000:]
    assert f"miou {metrics['miou']:.4f}" in done[0], result.stderr[-2000:]
    assert len(metrics["iou"]) == len(metrics["dice"]) == fx.CLASSES
    assert 0.0 <= metrics["miou"] <= 1.0
    assert metrics["num_examples"] == 5
    # Every valid eval pixel once, at the trained size (nearest-resized masks).
    expected = 0
    for _, _, mask in fx.pairs(5, seed=1):
        resized = tf.image.resize(mask[..., None], (32, 32), method="nearest").numpy()
        expected += int((resized != fx.IGNORE).sum())
    assert metrics["num_pixels"] == expected
    assert (tmp_path / "export" / "model.keras").exists()
    tags = _tensorboard_tags(tmp_path / "tensorboard")
    assert {"eval/miou", "eval/iou/class_2", "eval/pr_auc/class_1"} <= tags
    assert {"eval/pictures/example_0", "eval/pictures/example_1"} <= tags
    assert "eval/iou" not in tags  # the list is summary.json's; TensorBoard has its items


def test_a_bad_mask_stops_the_cli_before_any_checkpoint_naming_the_file(folders, tmp_path):
    folder = fx.write_folder(tmp_path / "bad", 10)
    bad = folder / "masks" / "case_007.png"
    mask = np.zeros((24, 32, 1), np.uint8)  # case_007 is 24x32
    mask[0, 0] = 9
    tf.io.write_file(str(bad), tf.io.encode_png(mask))
    result = runs.run(_command(tmp_path / "run", folder, folders[1]), check=False)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert f"mask {bad}" in output
    assert "class ids must be in [0, 3) or the ignore label 255; found 9" in output
    assert not list((tmp_path / "run").glob("checkpoints/ckpt-*"))


def _tensorboard_tags(logdir) -> set:
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    accumulator.Reload()
    return set(accumulator.Tags()["tensors"])
