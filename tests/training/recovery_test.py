"""A bad checkpoint never blocks a run, and a divergence never leaves one that cannot
continue: the real CLI against damaged work dirs and a learning rate of 1e30."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.training import runs

pytestmark = pytest.mark.slow

CONSTANT_RATE = {
    **runs.TINY,
    "train.steps_per_loop": 5,
    "train.checkpoint_every": 10,
    "train.log_every": 10,
    "train.keep_checkpoints": 10,
    "train.deterministic": True,
    # A rate that does not depend on train.steps, so that a shorter run is a prefix.
    "optimizer.warmup_steps": 0,
    "optimizer.decay": "constant",
}


def _command(workdir, **overrides):
    return runs.train_command("default", workdir, {**CONSTANT_RATE, **overrides})


def _assert_same_weights(workdir, reference):
    for ours, theirs in zip(
        runs.final_weights(workdir), runs.final_weights(reference), strict=True
    ):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def thirty_steps_and_a_forty_step_reference(tmp_path_factory):
    base = tmp_path_factory.mktemp("recovery")
    runs.run(_command(base / "thirty", **{"train.steps": 30}))
    runs.run(_command(base / "reference", **{"train.steps": 40}))
    return base / "thirty", base / "reference"


def _truncate_data(checkpoints: Path):
    data = checkpoints / "ckpt-30.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 2])


def _empty_index(checkpoints: Path):
    (checkpoints / "ckpt-30.index").write_bytes(b"")


@pytest.mark.parametrize(
    ("damage", "resumed_at", "named"),
    [
        (_truncate_data, 20, "ckpt-30"),
        (_empty_index, 20, "ckpt-30"),
        (lambda c: (c / "checkpoint").write_bytes(b""), 30, None),
        (lambda c: (c / "checkpoint").write_bytes(b"\x00 not a state {"), 30, None),
    ],
    ids=["truncated_data", "empty_index", "empty_state_file", "garbage_state_file"],
)
def test_a_damaged_latest_checkpoint_is_named_and_the_run_continues_from_the_one_before(
    tmp_path, thirty_steps_and_a_forty_step_reference, damage, resumed_at, named
):
    thirty, reference = thirty_steps_and_a_forty_step_reference
    workdir = tmp_path / "run"
    shutil.copytree(thirty, workdir)
    damage(workdir / "checkpoints")
    result = runs.run(_command(workdir, **{"train.steps": 40}))
    assert f"resumed from {workdir / 'checkpoints' / f'ckpt-{resumed_at}'} at step" in result.stderr
    if named:
        assert re.search(rf"checkpoint \S*{named} cannot be used \(\w+: .+\)", result.stderr), (
            result.stderr[-3000:]
        )
        assert (workdir / "checkpoints" / "rejected" / f"{named}.index").exists()
    _assert_same_weights(workdir, reference)
    summary = runs.summary(workdir)
    assert len(summary["train_losses"]) == 40
    np.testing.assert_allclose(
        summary["train_losses"], runs.summary(reference)["train_losses"], rtol=1e-6
    )


def test_under_multiworker_every_worker_restores_the_checkpoint_the_chief_chose(
    tmp_path, thirty_steps_and_a_forty_step_reference
):
    _, reference = thirty_steps_and_a_forty_step_reference
    workdir = tmp_path / "mw"
    overrides = {**CONSTANT_RATE, "train.steps": 30}
    runs.run(runs.train_command("multiworker", workdir, overrides))
    _truncate_data(workdir / "checkpoints")
    result = runs.run(runs.train_command("multiworker", workdir, {**overrides, "train.steps": 40}))
    output = result.stdout + result.stderr
    assert f"resumed from {workdir / 'checkpoints' / 'ckpt-20'} at step 20" in output
    assert "ckpt-30 cannot be used" in output
    # Both workers continued from ckpt-20: the single-device run, to all-reduce rounding.
    for ours, theirs in zip(
        runs.final_weights(workdir), runs.final_weights(reference), strict=True
    ):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_when_no_checkpoint_loads_the_run_stops_and_only_restart_starts_over(
    tmp_path, thirty_steps_and_a_forty_step_reference
):
    thirty, reference = thirty_steps_and_a_forty_step_reference
    workdir = tmp_path / "run"
    shutil.copytree(thirty, workdir)
    for index in (workdir / "checkpoints").glob("ckpt-*.index"):
        index.write_bytes(b"garbage")
    command = _command(workdir, **{"train.steps": 40})
    # Progress was recorded but nothing loads: training from step 0 without being
    # asked would throw the run away with exit 0. One line, non-zero, nothing deleted.
    result = runs.run(command, check=False)
    assert result.returncode != 0
    assert "records training up to step 30 but holds no usable checkpoint" in result.stderr
    assert "--restart" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert sorted(p.name for p in (workdir / "checkpoints" / "rejected").glob("*.index")) == [
        "ckpt-10.index",
        "ckpt-20.index",
        "ckpt-30.index",
    ]
    result = runs.run([*command, "--restart"])
    assert re.search(r"--restart: no usable checkpoint in .*; training from step 0", result.stderr)
    # From the start, with the same seed: the uninterrupted 40-step run.
    _assert_same_weights(workdir, reference)


def test_after_a_divergence_a_smaller_learning_rate_resumes_from_the_last_good_checkpoint(
    tmp_path,
):
    every_step = {"train.checkpoint_every": 1, "train.steps_per_loop": 1, "train.log_every": 1}
    workdir = tmp_path / "run"
    runs.run(_command(workdir, **every_step, **{"train.steps": 6}))
    # Adam at 1e30: the update of step 7 makes the weights huge but finite, so ckpt-7
    # is written; the loss of step 8, computed with ckpt-7's weights, is not finite.
    # A changed rate is a changed experiment: accepted (and recorded) only when named.
    allow = "--allow_config_change=optimizer.learning_rate"
    diverging = [
        *_command(workdir, **every_step, **{"train.steps": 12, "optimizer.learning_rate": 1e30}),
        allow,
    ]
    result = runs.run(diverging, check=False)
    assert result.returncode != 0
    assert re.search(r"NonFinite\w*Error: .*at step 8", result.stderr), result.stderr[-3000:]
    assert (workdir / "checkpoints" / "diverged" / "ckpt-7.index").exists()
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-6")
    assert "--config.optimizer.learning_rate" in result.stderr
    assert not (workdir / "summary.json").exists() or runs.summary(workdir)["step"] == 6

    # The documented remedy: the same command with a smaller rate.
    assert allow in result.stderr
    result = runs.run([*_command(workdir, **every_step, **{"train.steps": 12}), allow])
    assert f"resumed from {workdir / 'checkpoints' / 'ckpt-6'} at step 6" in result.stderr
    assert re.search(r"step 12/12 .* lr 0\.003 ", result.stderr), result.stderr[-2000:]
    reference = tmp_path / "reference"
    runs.run(_command(reference, **every_step, **{"train.steps": 12}))
    _assert_same_weights(workdir, reference)


def test_weights_that_become_non_finite_stop_the_run_before_they_are_checkpointed(tmp_path):
    from focal_dist.configs import default
    from focal_dist.distribute import get_backend
    from focal_dist.tasks.classification import ClassificationTask
    from focal_dist.training.trainer import NonFiniteWeightsError, Trainer

    config = default.get_config()
    overrides = {"train.steps": 4, "train.checkpoint_every": 1, "train.steps_per_loop": 1}
    for key, value in {**CONSTANT_RATE, **overrides}.items():
        section, *path, name = key.split(".")
        node = config[section]
        for part in path:
            node = node[part]
        node[name] = (16,) if name == "hidden_units" else value
    trainer = Trainer(
        config=config,
        task=ClassificationTask(config),
        backend=get_backend("default"),
        workdir=str(tmp_path),
    )
    # A NaN in one Adam second-moment slot: the loss of step 1 (computed before the
    # update) is finite, the updated weight is not. Only the weight check sees it.
    slot = next(v for v in trainer.optimizer.variables if "velocity" in v.path)
    slot.assign(
        np.where(np.arange(slot.shape[-1]) == 0, np.nan, 0.0).astype(np.float32)
        * np.ones(slot.shape, np.float32)
    )
    with pytest.raises(
        NonFiniteWeightsError, match=r"weights are not finite after step \d+; stopped without"
    ):
        trainer.train()
    assert not list((tmp_path / "checkpoints").glob("ckpt-*.index"))
    assert not (tmp_path / "export").exists()
