"""Export beside the fresh-process load: replacement of an earlier export, refusals,
non-finite features, a model built under mirrored replicas, deploy.json."""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from focal_dist.distribute import get_backend
from focal_dist.serving import (
    Calibration,
    ExampleSpec,
    choose_threshold,
    export_saved_model,
    write_deploy_json,
)
from tests.serving import models

BACKEND = get_backend("default")


def test_non_finite_features_fail_the_request(tmp_path):
    identity = Calibration.identity(label_mode="binary", num_outputs=1)
    export_saved_model(
        models.mlp(6, 1, 0),
        calibration=identity,
        thresholds=[0.5],
        directory=str(tmp_path / "m"),
        features_spec=(6,),
    )
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    features = np.zeros((2, 6), np.float32)
    features[1, 3] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="features must be finite"):
        loaded.signatures["serving_default"](features=tf.constant(features))


def test_a_new_export_replaces_the_earlier_one_whole_and_a_refused_one_leaves_it(tmp_path):
    model = models.mlp(4, 1, 5)
    directory = tmp_path / "saved_model"
    identity = Calibration.identity(label_mode="binary", num_outputs=1)
    (tmp_path / "saved_model.partial").mkdir()  # left by an export killed half-way
    export_saved_model(
        model, calibration=identity, thresholds=[1.0], directory=str(directory), features_spec=(4,)
    )
    export_saved_model(
        model, calibration=identity, thresholds=[0.0], directory=str(directory), features_spec=(4,)
    )
    with pytest.raises(ValueError, match=r"thresholds must be 1 value\(s\) in \[0, 1\]"):
        export_saved_model(
            model,
            calibration=identity,
            thresholds=[2.0],
            directory=str(directory),
            features_spec=(4,),
        )
    with pytest.raises(ValueError, match="the calibration has 3 output"):
        export_saved_model(
            model,
            calibration=Calibration.identity(label_mode="multi_label", num_outputs=3),
            thresholds=[0.5] * 3,
            directory=str(directory),
            features_spec=(4,),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]
    served = tf.saved_model.load(str(directory)).signatures["serving_default"](
        features=tf.ones((3, 4))
    )
    np.testing.assert_array_equal(served["decisions"].numpy(), np.ones((3, 1)))  # threshold 0


def test_a_model_built_under_mirrored_replicas_exports_from_its_variables(tmp_path):
    backend = get_backend("mirrored", num_cpu_devices=4)
    with backend.scope():
        model = models.mlp(3, 1, 6)
    x = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    identity = Calibration.identity(label_mode="binary", num_outputs=1)
    export_saved_model(
        model,
        calibration=identity,
        thresholds=[0.5],
        directory=str(tmp_path / "m"),
        features_spec=(3,),
    )
    served = tf.saved_model.load(str(tmp_path / "m")).signatures["serving_default"](
        features=tf.constant(x)
    )
    np.testing.assert_allclose(served["logits"].numpy(), model.predict(x, verbose=0), atol=1e-6)


def test_deploy_json_holds_thresholds_calibration_priors_and_config(tmp_path):
    rng = np.random.default_rng(0)
    model, features = models.mlp(5, 4, 1), rng.normal(size=(64, 5)).astype(np.float32)
    calibration, _ = models.fitted(
        model, features, "multi_label", rng, deploy_positive_rate=[0.01, 0.1, 0.2, 0.5]
    )
    decision = choose_threshold(
        calibration.apply_numpy(model.predict(features, verbose=0)),
        (np.arange(64 * 4).reshape(-1, 4) % 3 == 0).astype(float),
        target="recall:0.8",
        backend=BACKEND,
    )
    signatures = export_saved_model(
        model,
        calibration=calibration,
        thresholds=decision.thresholds,
        directory=str(tmp_path / "saved_model"),
        features_spec=(5,),
        example_spec=ExampleSpec(column_names=["f0", "f1", "f2", "f3", "f4"]),
    )
    path = write_deploy_json(
        str(tmp_path),
        calibration=calibration,
        decision=decision,
        class_names=["a", "b", "c", "d"],
        config={"task": {"name": "multi_label"}},
        signatures=signatures,
    )
    document = json.loads(Path(path).read_text())
    assert document["decision"]["target"] == "recall:0.8"
    assert document["decision"]["thresholds"] == list(decision.thresholds)
    assert (
        Calibration.from_dict({k: v for k, v in document["calibration"].items() if k != "formula"})
        == calibration
    )
    assert document["priors"]["deployment"] == [0.01, 0.1, 0.2, 0.5]
    assert document["class_names"] == ["a", "b", "c", "d"]
    assert document["config"]["task"]["name"] == "multi_label"
    assert set(document["saved_model"]["signatures"]) == {"serving_default", "examples"}
    with pytest.raises(ValueError, match="class_names has 2 names for 4 outputs"):
        write_deploy_json(
            str(tmp_path),
            calibration=calibration,
            decision=decision,
            class_names=["a", "b"],
        )
