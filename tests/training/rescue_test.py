"""An error after training steps costs none of them: a user task whose metric raises at
the first evaluation leaves a checkpoint of that step, and a full disk during a save
ends in one line naming the directory and the last good checkpoint."""

import os
import subprocess
import textwrap

import pytest

from tests.training import runs

pytestmark = pytest.mark.slow

TASK = textwrap.dedent(
    """
    import sys

    import keras
    import numpy as np
    import tensorflow as tf

    from focal_dist import configs, losses
    from focal_dist.training import KerasTask, train_task


    def model():
        init = keras.initializers.GlorotUniform(seed=0)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, kernel_initializer=init)])


    def examples(seed):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(256, 4)).astype("float32")
        return tf.data.Dataset.from_tensor_slices((x, (x[:, :1] > 1).astype("float32")))


    class BrokenMetrics(KerasTask):
        def probabilities_and_targets(self, labels, logits):
            raise RuntimeError("this metric is broken")


    workdir, broken, distribution = sys.argv[1], sys.argv[2] == "broken", sys.argv[3]
    config = configs.get_config("default")
    config.train.steps, config.train.global_batch_size, config.train.steps_per_loop = 30, 32, 5
    config.train.eval_every, config.train.checkpoint_every = 15, 100
    task = (BrokenMetrics if broken else KerasTask)(
        model_fn=model,
        train_examples=lambda: examples(0),
        eval_examples=lambda: examples(1),
        per_example_loss=lambda y, z: losses.binary_focal_crossentropy(y, z, from_logits=True),
        num_outputs=1,
    )
    options = {"num_cpu_devices": 2} if distribution == "mirrored" else {}
    summary = train_task(task, workdir=workdir, config=config, distribution=distribution, **options)
    print("resumed_from_step", summary["resumed_from_step"])
    """
)


@pytest.mark.parametrize("distribution", ["default", "mirrored", "horovod"])
def test_a_metric_that_raises_at_the_first_evaluation_keeps_the_steps_before_it(
    distribution, tmp_path
):
    script = tmp_path / "task.py"
    script.write_text(TASK)
    workdir = tmp_path / "run"

    def command(state):
        return runs.distributed_command(
            distribution, [str(script), str(workdir), state, distribution]
        )

    failed = runs.run(command("broken"), check=False)
    assert failed.returncode != 0
    assert "this metric is broken" in failed.stderr
    assert "saving a checkpoint before it is raised" in failed.stderr
    # checkpoint_every is 100: only the rescue saved step 15.
    assert (workdir / "checkpoints" / "ckpt-15.index").exists()
    segments = [line for line in (workdir / "segments.jsonl").read_text().splitlines()]
    assert '"ended": "RuntimeError"' in segments[-1]
    assert '"saved_step": 15' in segments[-1]
    fixed = runs.run(command("fixed"))
    assert "resumed_from_step 15" in fixed.stdout


def test_a_full_disk_during_a_save_ends_in_one_line_and_a_rerun_resumes(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test mounts a small tmpfs and needs root (make test runs as root)")
    mount = tmp_path / "small"
    mount.mkdir()
    # One checkpoint (model and Adam slots, about 4.7 MB) fits, the second does not.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=7m", "tmpfs", str(mount)], check=True)
    try:
        workdir = mount / "run"
        overrides = {
            "train.steps": 40,
            "train.checkpoint_every": 10,
            "train.steps_per_loop": 10,
            "train.keep_checkpoints": 50,
            "train.eval_every": 0,
            "model.hidden_units": "(512, 512)",
            "data.num_features": 256,
            "data.synthetic.num_train": 512,
            "data.synthetic.num_eval": 64,
        }
        result = runs.run(runs.train_command("default", workdir, overrides), check=False)
        assert result.returncode == 1, result.stderr[-3000:]
        assert "no space left on the device of" in result.stderr
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        assert "the last good checkpoint is" in result.stderr
        assert f"{workdir}/checkpoints/ckpt-10" in result.stderr
        # Space freed (the tmpfs grown), the same command resumes from ckpt-10.
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
        rerun = runs.run(runs.train_command("default", workdir, overrides))
        assert "resumed from" in rerun.stderr
        assert runs.summary(workdir)["resumed_from_step"] == 10
        assert runs.summary(workdir)["step"] == 40
    finally:
        subprocess.run(["umount", str(mount)], check=True)
