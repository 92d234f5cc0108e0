"""The train CLI end to end: summary.json, TensorBoard (files and a live server),
metrics against an exact reference, checkpoints, kill -9 and SIGTERM, bad input."""

import json
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from tests.training import runs

pytestmark = pytest.mark.slow

SMALL = {
    "train.steps": 60,
    "train.global_batch_size": 128,
    "train.steps_per_loop": 10,
    "train.eval_every": 30,
    "train.checkpoint_every": 20,
    "train.log_every": 10,
    "data.num_features": 8,
    "data.synthetic.num_train": 4096,
    "data.synthetic.num_eval": 2048,
    "data.synthetic.positive_rate": 0.05,
    "model.hidden_units": "(16,)",
}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("small_run")
    result = runs.run(runs.train_command("default", workdir, SMALL))
    return workdir, result


def _events(workdir):
    accumulator = event_accumulator.EventAccumulator(
        str(Path(workdir) / "tensorboard"), size_guidance={"tensors": 0}
    )
    accumulator.Reload()
    return accumulator


def test_summary_json_has_step_loss_eval_metrics_and_resolved_config(small_run):
    workdir, result = small_run
    summary = runs.summary(workdir)
    assert summary["step"] == 60
    assert len(summary["train_losses"]) == 60
    assert np.isfinite(summary["train_loss"])
    for name in ("pr_auc", "roc_auc", "precision", "recall", "f1", "positive_rate", "loss"):
        assert name in summary["eval"], name
    assert summary["eval"]["num_examples"] == 2048
    assert summary["config"]["train"]["global_batch_size"] == 128
    assert (Path(workdir) / "export" / "model.keras").exists()
    # Progress lines: step, loss, examples/s and ETA.
    assert "step 60/60" in result.stderr
    assert "examples/s" in result.stderr
    assert "ETA" in result.stderr


def test_eval_metrics_match_an_exact_numpy_computation_on_the_exported_model(small_run):
    import keras

    from focal_dist.data.synthetic import SyntheticTask

    workdir, _ = small_run
    summary = runs.summary(workdir)
    synthetic = SyntheticTask(num_features=8, positive_rate=0.05)
    x, y = synthetic.examples(tf.range(4096, 4096 + 2048, dtype=tf.int64))
    model = keras.models.load_model(Path(workdir) / "export" / "model.keras", compile=False)
    scores = tf.sigmoid(model(x)).numpy()[:, 0]
    labels = y.numpy()[:, 0]
    # Average precision and ROC-AUC by sorting (ties are rare in float scores).
    order = np.argsort(-scores, kind="stable")
    hits = labels[order]
    precision_at_hits = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    average_precision = (precision_at_hits * hits).sum() / hits.sum()
    ranks = np.argsort(np.argsort(scores)) + 1
    positives = labels == 1
    roc_auc = (ranks[positives].sum() - positives.sum() * (positives.sum() + 1) / 2) / (
        positives.sum() * (~positives).sum()
    )
    # Bucketed (1000 buckets) against exact: close, not equal.
    assert summary["eval"]["pr_auc"] == pytest.approx(average_precision, abs=0.02)
    assert summary["eval"]["roc_auc"] == pytest.approx(roc_auc, abs=0.005)
    assert summary["eval"]["positive_rate"] == pytest.approx(labels.mean(), abs=1e-9)
    predicted = scores >= 0.5
    recall = (predicted & positives).sum() / positives.sum()
    assert summary["eval"]["recall"] == pytest.approx(recall, abs=2 / positives.sum())


def test_tensorboard_event_files_hold_every_summary(small_run):
    workdir, _ = small_run
    events = _events(workdir)
    tags = events.Tags()["tensors"]
    for tag in (
        "train/loss",
        "train/learning_rate",
        "train/examples_per_second",
        "train/global_batch_size",
        "train/num_replicas",
        "train/gradient_norm",
        "eval/pr_auc",
        "eval/roc_auc",
        "eval/precision",
        "eval/recall",
        "eval/f1",
        "eval/positive_rate",
        "eval/probability_positives",
        "eval/probability_negatives",
        "eval/pr_curve",
        "data/label_histogram",
    ):
        assert tag in tags, tag
    summary = runs.summary(workdir)
    loss_events = events.Tensors("train/loss")
    assert [e.step for e in loss_events] == [10, 20, 30, 40, 50, 60]
    np.testing.assert_allclose(
        tf.make_ndarray(loss_events[-1].tensor_proto),
        np.mean(summary["train_losses"][50:60]),
        rtol=1e-6,
    )
    pr_auc = tf.make_ndarray(events.Tensors("eval/pr_auc")[-1].tensor_proto)
    np.testing.assert_allclose(pr_auc, summary["eval"]["pr_auc"], rtol=1e-6)
    curve = tf.make_ndarray(events.Tensors("eval/pr_curve")[-1].tensor_proto)
    assert curve.shape == (6, 101)
    # TP + FN at threshold 0 is the number of positives in the eval set.
    assert curve[0, 0] + curve[3, 0] == pytest.approx(
        summary["eval"]["positive_rate"] * 2048, abs=0.5
    )
    histogram = tf.make_ndarray(events.Tensors("eval/probability_negatives")[-1].tensor_proto)
    assert histogram[:, 2].sum() == pytest.approx((1 - summary["eval"]["positive_rate"]) * 2048)
    table = tf.make_ndarray(events.Tensors("data/label_histogram")[0].tensor_proto)
    assert b"positives" in table.item()
    plugins = events.PluginTagToContent("hparams")
    assert plugins, "no hparams summary"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_tensorboard_server_serves_the_runs_scalar_tags(small_run):
    workdir, _ = small_run
    port = _free_port()
    server = subprocess.Popen(
        [
            str(runs.BIN / "tensorboard"),
            f"--logdir={Path(workdir) / 'tensorboard'}",
            "--host=127.0.0.1",
            f"--port={port}",
            "--reload_interval=1",
        ],
        env=runs.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        tags = {}
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                url = f"http://127.0.0.1:{port}/data/plugin/scalars/tags"
                with urllib.request.urlopen(url, timeout=5) as response:
                    tags = json.loads(response.read())
                if tags and "train/loss" in next(iter(tags.values()), {}):
                    break
            except OSError:
                pass
            time.sleep(1)
        run_tags = next(iter(tags.values()))
        assert "train/loss" in run_tags
        assert "eval/pr_auc" in run_tags
        url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run=.&tag=train%2Floss"
        with urllib.request.urlopen(url, timeout=5) as response:
            points = json.loads(response.read())
        assert [p[1] for p in points] == [10, 20, 30, 40, 50, 60]
    finally:
        server.terminate()
        server.wait(timeout=30)


RESUME = {
    **SMALL,
    "train.eval_every": 0,
    "train.deterministic": True,
    "train.steps": 400,
    "train.keep_checkpoints": 100,
}


def _wait_for(path: Path, process, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline and not path.exists():
        assert process.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.2)
    assert path.exists(), f"{path} never appeared"


# kill -9 after a checkpoint, then a rerun ending with the uninterrupted weights, is
# tests/training/resume_test.py, under every distribution.


def test_sigterm_saves_a_checkpoint_and_exits_143_so_that_job_controllers_retry(tmp_path):
    config = {**RESUME, "train.steps": 100000, "train.checkpoint_every": 100000}
    command = runs.train_command("default", tmp_path, config)
    process = subprocess.Popen(
        command,
        cwd=runs.ROOT,
        env=runs.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(tmp_path / "tensorboard", process)
    time.sleep(3)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    # 128 + SIGTERM: retryable for training-operator's restartPolicy ExitCode.
    assert process.returncode == 143, stderr[-3000:]
    stopped = re.search(r"stopped by SIGTERM at step (\d+) with a checkpoint", stderr)
    assert stopped, stderr[-3000:]
    step = int(stopped.group(1))
    assert 0 < step < 100000
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith(f"ckpt-{step}")
    summary = runs.summary(tmp_path)
    assert summary["preempted"] is True
    assert summary["complete"] is False
    assert summary["step"] == step


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config = {
        **SMALL,
        "train.eval_every": 0,
        "train.steps": 20,
        "train.checkpoint_every": 10,
        "optimizer.name": "sgd",
        "optimizer.warmup_steps": 0,
        "optimizer.decay": "constant",
    }
    runs.run(runs.train_command("default", tmp_path, config))
    (tmp_path / "summary.json").unlink()
    # Resume from step 20 with a rate that makes the weights overflow.
    diverging = {**config, "train.steps": 60, "optimizer.learning_rate": 1e30}
    command = runs.train_command("default", tmp_path, diverging)
    command.append("--allow_config_change=optimizer.learning_rate")  # a named change
    result = runs.run(command, check=False)
    assert result.returncode != 0
    assert "NonFiniteLossError" in result.stderr
    assert re.search(r"at step (2[1-9]|30);", result.stderr), result.stderr[-2000:]
    assert not (tmp_path / "summary.json").exists()
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest.endswith("ckpt-20")
    reader = tf.train.load_checkpoint(latest)
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.all(np.isfinite(value)), name


@pytest.mark.parametrize(
    ("override", "match"),
    [
        (
            {"loss.name": "hinge"},
            r"loss.name must be one of focal, bce, ce, asl, logit_adjusted; got 'hinge'",
        ),
        ({"train.global_batch_size": 30}, None),
        ({"loss.class_weights": "sqrt"}, r"loss.class_weights must be.*'sqrt'"),
        ({"data.source": "csv"}, r"data.path is required for data.source='csv'"),
    ],
)
def test_bad_config_fails_with_a_message_naming_the_field(tmp_path, override, match):
    distribution = "mirrored" if "train.global_batch_size" in override else "default"
    result = runs.run(
        runs.train_command(distribution, tmp_path, {**SMALL, **override}), check=False
    )
    assert result.returncode != 0
    expected = match or r"global_batch_size 30 is not divisible by the 4 replicas"
    assert re.search(expected, result.stderr), result.stderr[-2000:]


def test_hparams_hold_only_the_settings_of_the_runs_data_source(small_run):
    from tensorboard.plugins.hparams import plugin_data_pb2

    workdir, _ = small_run
    content = _events(workdir).PluginTagToContent("hparams")
    names = set()
    for blob in content.values():
        data = plugin_data_pb2.HParamsPluginData.FromString(blob)
        names |= set(data.session_start_info.hparams)
    assert {"data.source", "data.num_features", "data.synthetic.positive_rate"} <= names
    assert {"loss.gamma", "train.global_batch_size"} <= names
    # A synthetic run reads no files and no images.
    for absent in ("data.image_size", "data.channels", "data.path", "data.label_column"):
        assert absent not in names, absent
