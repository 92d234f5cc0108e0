"""CheckpointStore: damaged files are skipped (named), saves commit in order, the
divergence rule quarantines what was written after a divergence began."""

import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import logging

from focal_dist.training import checkpoints
from focal_dist.training.checkpoints import CheckpointStore
from focal_dist.training.divergence import Record, diverged_checkpoints


def _model(seed=0, units=4):
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(
        units, kernel_initializer=keras.initializers.GlorotUniform(seed=seed)
    )(inputs)
    return keras.Model(inputs, outputs)


def _store(directory, model, keep=10):
    return CheckpointStore(tf.train.Checkpoint(model=model), str(directory), keep=keep, writer=True)


def _save_steps(directory, steps, keep=10):
    """Saves checkpoints whose kernel is filled with the step number."""
    model = _model()
    store = _store(directory, model, keep)
    for step in steps:
        for variable in model.variables:
            variable.assign(np.full(variable.shape, float(step), np.float32))
        store.save(step, [1.0 / step] * 2)
    return store


def _restored_value(directory):
    model = _model(seed=7)
    store = _store(directory, model)
    step = store.choose()
    if step:
        store.restore(step)
    return step, float(model.variables[0].numpy().flat[0])


@pytest.fixture
def warnings(monkeypatch):
    messages = []
    monkeypatch.setattr(logging, "warning", lambda fmt, *args: messages.append(fmt % args))
    return messages


def test_save_writes_numbered_checkpoints_a_history_and_a_state_file_tensorflow_reads(tmp_path):
    store = _save_steps(tmp_path, [10, 20, 30, 40], keep=2)
    assert store.steps() == [30, 40]
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-40")
    assert [r.step for r in store.history(40)] == [10, 20, 30, 40]
    assert store.history(40)[0].losses == (0.1, 0.1)
    assert _restored_value(tmp_path) == (40, 40.0)


def test_a_truncated_data_file_is_named_and_the_previous_checkpoint_restored(tmp_path, warnings):
    _save_steps(tmp_path, [10, 20])
    data = tmp_path / "ckpt-20.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:-9])
    assert _restored_value(tmp_path) == (10, 10.0)
    assert any(str(tmp_path / "ckpt-20") in m and "Error" in m for m in warnings), warnings
    assert (tmp_path / "rejected" / "ckpt-20.index").exists()
    assert tf.train.latest_checkpoint(str(tmp_path)) is not None


def test_a_flipped_byte_in_the_data_file_fails_its_checksum_and_is_skipped(tmp_path, warnings):
    _save_steps(tmp_path, [10, 20])
    data = tmp_path / "ckpt-20.data-00000-of-00001"
    content = bytearray(data.read_bytes())
    content[0] ^= 0xFF
    data.write_bytes(bytes(content))
    assert _restored_value(tmp_path) == (10, 10.0)
    assert any(str(tmp_path / "ckpt-20") in m for m in warnings), warnings


def test_a_checkpoint_holding_nan_is_named_and_skipped(tmp_path, warnings):
    store = _save_steps(tmp_path, [10, 20])
    model = store.checkpoint.model
    model.variables[0].assign(np.full(model.variables[0].shape, np.nan, np.float32))
    store.checkpoint.write(str(tmp_path / "ckpt-20"))
    assert _restored_value(tmp_path) == (10, 10.0)
    assert any("ckpt-20" in m and "NaN or inf" in m for m in warnings), warnings


def test_an_empty_index_is_named_and_the_previous_checkpoint_restored(tmp_path, warnings):
    _save_steps(tmp_path, [10, 20])
    (tmp_path / "ckpt-20.index").write_bytes(b"")
    assert _restored_value(tmp_path) == (10, 10.0)
    assert any(str(tmp_path / "ckpt-20") in m for m in warnings), warnings


@pytest.mark.parametrize("content", [b"", b"\x00garbage{{"])
def test_an_empty_or_garbage_state_file_does_not_matter(tmp_path, content):
    _save_steps(tmp_path, [10, 20])
    (tmp_path / "checkpoint").write_bytes(content)
    assert _restored_value(tmp_path) == (20, 20.0)
    # Restoring rewrites the state file for tools that read it.
    _store(tmp_path, _model()).commit_restore(20)
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-20")


def test_a_save_killed_before_its_record_leaves_the_previous_checkpoint_chosen(tmp_path):
    store = _save_steps(tmp_path, [10, 20])
    # A kill after TensorFlow's write, before the history line: files complete, no record.
    store.checkpoint.write(str(tmp_path / "ckpt-30"))
    # A kill inside TensorFlow's write: its temporary folder.
    (tmp_path / "ckpt-40_temp").mkdir()
    (tmp_path / "ckpt-40_temp" / "part-00000-of-00001.index").write_bytes(b"x")
    assert _restored_value(tmp_path) == (20, 20.0)
    assert not (tmp_path / "ckpt-40_temp").exists()


def test_a_partial_last_history_line_is_ignored_and_dropped_on_restore(tmp_path):
    store = _save_steps(tmp_path, [10, 20])
    with open(tmp_path / checkpoints.HISTORY, "a") as handle:
        handle.write('{"step": 30, "loss')
    assert _restored_value(tmp_path) == (20, 20.0)
    store.commit_restore(20)
    assert [r.step for r in store.history(10**9)] == [10, 20]
    assert (tmp_path / checkpoints.HISTORY).read_text().count("\n") == 2


def test_a_lost_index_of_the_newest_is_rejected_by_name_and_the_step_used_instead_said(
    tmp_path, warnings
):
    _save_steps(tmp_path, [10, 20])
    os.remove(tmp_path / "ckpt-20.index")
    assert _restored_value(tmp_path) == (10, 10.0)
    assert any(f"{tmp_path / 'ckpt-20'}.index is missing" in m for m in warnings), warnings
    assert any("resuming from step 10" in m for m in warnings), warnings
    assert (tmp_path / "rejected" / "ckpt-20.data-00000-of-00001").exists()


def test_a_lost_data_shard_is_rejected_by_name(tmp_path, warnings):
    _save_steps(tmp_path, [10, 20])
    os.remove(tmp_path / "ckpt-20.data-00000-of-00001")
    assert _restored_value(tmp_path) == (10, 10.0)
    assert any(str(tmp_path / "ckpt-20") in m for m in warnings), warnings
    assert (tmp_path / "rejected" / "ckpt-20.index").exists()


@pytest.mark.parametrize("damage", ["remove_index", "empty_index"])
def test_no_usable_checkpoint_over_recorded_progress_stops_and_keeps_the_files(
    tmp_path, warnings, damage
):
    _save_steps(tmp_path, [10])
    if damage == "remove_index":
        os.remove(tmp_path / "ckpt-10.index")
    else:
        (tmp_path / "ckpt-10.index").write_bytes(b"")
    with pytest.raises(checkpoints.NoUsableCheckpointError) as raised:
        _restored_value(tmp_path)
    message = str(raised.value)
    assert "up to step 10" in message
    assert f"{tmp_path / 'ckpt-10'} (" in message
    assert "--restart" in message
    assert (tmp_path / "rejected" / "ckpt-10.data-00000-of-00001").exists()
    # A rerun still refuses (the rejected files are aside, the history still says 10) ...
    with pytest.raises(checkpoints.NoUsableCheckpointError, match="up to step 10"):
        _restored_value(tmp_path)
    # ... until asked to start again, which trains from step 0 with an empty history.
    store = _store(tmp_path, _model())
    assert store.choose(restart=True) == 0
    store.commit_restore(0)
    assert store.records() == {}
    assert _restored_value(tmp_path) == (
        0,
        pytest.approx(_model(seed=7).variables[0].numpy().flat[0]),
    )


def test_a_new_directory_starts_at_step_zero_without_a_word(tmp_path, warnings):
    assert _restored_value(tmp_path / "new")[0] == 0
    assert warnings == []


def test_a_checkpoint_of_another_model_is_an_error_naming_it(tmp_path):
    _save_steps(tmp_path, [10])
    other = CheckpointStore(
        tf.train.Checkpoint(model=_model(units=5)), str(tmp_path), keep=3, writer=True
    )
    assert other.choose() == 10
    with pytest.raises(checkpoints.CheckpointMismatchError, match=r"ckpt-10 does not fit"):
        other.restore(10)


def test_a_legacy_directory_without_history_restores_its_newest_checkpoint(tmp_path):
    _save_steps(tmp_path, [10, 20])
    os.remove(tmp_path / checkpoints.HISTORY)
    assert _restored_value(tmp_path) == (20, 20.0)


# --- the divergence rule -------------------------------------------------------------


def _records(losses_by_step):
    return [Record(step, tuple(losses)) for step, losses in losses_by_step]


def test_a_checkpoint_whose_next_loss_is_non_finite_is_quarantined_with_all_later_ones():
    # Learning rate 1e30, a checkpoint every step: the update of step 7 breaks the
    # weights, ckpt-7 is still finite, the loss of step 8 (its weights) is inf.
    records = _records([(s, [0.5 - 0.01 * s]) for s in range(1, 8)])
    assert diverged_checkpoints(records, [math.inf]) == [7]


def test_a_checkpoint_whose_next_loss_exploded_is_quarantined_even_if_finite():
    records = _records([(10, [0.4] * 10), (20, [0.3] * 10), (30, [3e4] * 10), (40, [1e9] * 10)])
    # ckpt-20's weights gave 3e4 at step 21: the divergence began before ckpt-20.
    assert diverged_checkpoints(records, [1e20, math.nan]) == [20, 30, 40]


def test_a_loss_spike_of_one_imbalanced_batch_is_not_a_divergence():
    records = _records([(s, [0.2, 0.15, 0.1]) for s in (3, 6, 9)])
    # One batch whose few positives cost 30 times the median, then NaN from a bad rate.
    assert diverged_checkpoints(records, [4.5, math.nan]) == []
    assert diverged_checkpoints(records, [50.0, math.nan]) == [9]


def test_checkpoints_whose_next_losses_were_healthy_are_kept():
    records = _records([(10, [0.4] * 10), (20, [0.3] * 10), (30, [0.35] * 10)])
    assert diverged_checkpoints(records, [0.31, 2.0, math.inf]) == []
    # The newest one with no step after it yet has no evidence against it.
    assert diverged_checkpoints(records, []) == []


def test_quarantine_moves_diverged_checkpoints_aside_and_truncates_the_history(tmp_path):
    model = _model()
    store = _store(tmp_path, model)
    for step, loss in ((1, 0.5), (2, 0.45), (3, 0.44)):
        store.save(step, [loss])
    assert store.quarantine_diverged([math.inf]) == [3]
    assert store.steps() == [1, 2]
    assert (tmp_path / "diverged" / "ckpt-3.index").exists()
    assert [r.step for r in store.history(10**9)] == [1, 2]
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-2")
