"""Every shipped config trains: synthetic multi-label and multiclass, files (TFRecord,
CSV, Parquet), and XLA with mixed precision."""

import math

import pytest

from tests.distribute import fixtures
from tests.training import runs

pytestmark = pytest.mark.slow

TINY = {**runs.TINY, "train.steps": 30, "train.steps_per_loop": 10, "data.synthetic.num_eval": 1024}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return fixtures.write_files(tmp_path_factory.mktemp("train_files"))


def _train(tmp_path, config, overrides, distribution="default"):
    runs.run(runs.train_command(distribution, tmp_path, {**TINY, **overrides}, config=config))
    return runs.summary(tmp_path)


def test_multilabel_config_reports_per_class_metrics(tmp_path):
    summary = _train(tmp_path, "configs/multilabel.py", {})
    for c in range(5):
        assert f"pr_auc/class_{c}" in summary["eval"]
    assert math.isfinite(summary["eval"]["roc_auc"])


def test_multiclass_config_trains_with_sparse_focal_loss(tmp_path):
    summary = _train(
        tmp_path,
        "configs/multiclass.py",
        # Without warm-up, at a rate that learns in 30 steps. One batch's loss is too
        # noisy to compare; the eval loss over 1,024 examples is not.
        {
            "loss.class_weights": "inverse_sqrt",
            "optimizer.warmup_steps": 0,
            "optimizer.learning_rate": 0.03,
        },
    )
    first_losses = summary["train_losses"][:10]
    assert summary["eval"]["loss"] < 0.95 * sum(first_losses) / len(first_losses)
    assert summary["eval"]["roc_auc"] > 0.6  # macro over the 6 classes; chance is 0.5
    assert "pr_auc/class_5" in summary["eval"]


def test_tfrecord_training_with_auto_class_weights(tmp_path, files):
    summary = _train(
        tmp_path,
        "configs/default.py",
        {"data.source": "tfrecord", "data.path": files["binary"], "data.num_features": 3},
    )
    assert summary["eval"]["num_examples"] == fixtures.NUM_EXAMPLES
    assert summary["eval"]["positive_rate"] == pytest.approx(
        fixtures.expected_counts("binary")[1] / fixtures.NUM_EXAMPLES
    )


def test_csv_multilabel_training(tmp_path, files):
    summary = _train(
        tmp_path,
        "configs/csv.py",
        {
            "task.name": "multi_label",
            "task.num_classes": 5,
            "data.path": files["multi_label"],
            "data.label_column": "y0,y1,y2,y3,y4",
            "data.num_features": 3,
        },
    )
    assert summary["eval"]["num_examples"] == fixtures.NUM_EXAMPLES


def test_parquet_multiclass_training_under_horovod(tmp_path, files):
    summary = _train(
        tmp_path,
        "configs/parquet.py",
        {
            "task.name": "multiclass",
            "task.num_classes": 7,
            "loss.alpha": 1.0,
            "data.path": files["sparse"],
            "data.num_features": 2,
        },
        distribution="horovod",
    )
    assert summary["num_replicas"] == 2
    assert summary["eval"]["num_examples"] == fixtures.NUM_EXAMPLES


def test_xla_and_mixed_precision_follow_the_float32_run(tmp_path):
    import keras

    plain = _train(tmp_path / "plain", "configs/default.py", {})
    fast = _train(
        tmp_path / "fast",
        "configs/default.py",
        {"train.jit_compile": True, "train.mixed_precision": True},
    )
    assert all(math.isfinite(v) for v in fast["train_losses"])
    # The same initial weights and batches: before float16 rounding has compounded, the
    # losses agree to about 1e-2; over 30 steps of SGD the two trajectories drift apart a
    # little (4.5% at a spiky step in one run), but a broken loss scale or a float16
    # overflow would be off by far more than 0.05 anywhere.
    assert fast["train_losses"][:10] == pytest.approx(plain["train_losses"][:10], rel=2e-2)
    assert fast["train_losses"] == pytest.approx(plain["train_losses"], abs=5e-2)
    assert fast["eval"]["loss"] == pytest.approx(plain["eval"]["loss"], rel=5e-2)
    model = keras.models.load_model(tmp_path / "fast" / "export" / "model.keras", compile=False)
    assert model.get_layer("hidden_0").dtype_policy.name == "mixed_float16"
