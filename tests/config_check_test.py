"""validate_config refuses every bad value naming field, value and expectation, and the
CLI refuses a bad config before it writes anything to the work dir."""

import logging
import math
import re

import pytest

from focal_dist.configs import csv as csv_config
from focal_dist.configs import default, images, multiclass, multilabel, parquet
from focal_dist.training.config_check import ConfigError, validate_config
from tests.training import runs


def _with(config, **values):
    for field, value in values.items():
        *parents, leaf = field.split("__")
        node = config
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return config


def _error(config, **options) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_config(config, **options)
    return str(caught.value)


@pytest.mark.parametrize("module", [default, multiclass, multilabel])
def test_shipped_synthetic_configs_are_valid(module):
    validate_config(module.get_config(), num_replicas=4)


@pytest.mark.parametrize("module", [csv_config, parquet, images])
def test_shipped_file_configs_only_miss_their_data_path(module):
    message = _error(module.get_config())
    assert message.splitlines()[1:] == [
        f"  data.path is required for data.source={module.get_config().data.source!r}"
    ]


BAD = [
    ("task__name", "regression", r"task.name must be one of binary, multi_label, multiclass"),
    (
        "loss__name",
        "hinge",
        r"loss.name must be one of focal, bce, ce, asl, logit_adjusted; got 'hinge'",
    ),
    ("loss__gamma", -1.0, r"loss.gamma must be a finite number >= 0; got -1.0"),
    ("loss__gamma", math.inf, r"loss.gamma must be a finite number >= 0; got inf"),
    ("loss__alpha", 1.5, r"loss.alpha must be a number in \[0, 1\]; got 1.5"),
    ("loss__label_smoothing", -0.1, r"loss.label_smoothing must be a number in \[0, 1\]"),
    ("loss__class_weights", "sqrt", r"loss.class_weights must be one of none, auto, balanced"),
    ("loss__beta", 1.0, r"loss.beta must be a number in \[0, 1\); got 1.0"),
    ("optimizer__name", "rmsprop", r"optimizer.name must be one of sgd, momentum, adam"),
    ("optimizer__learning_rate", 0.0, r"optimizer.learning_rate must be a finite number > 0"),
    ("optimizer__learning_rate", math.nan, r"optimizer.learning_rate must be .*; got nan"),
    ("optimizer__momentum", 1.0, r"optimizer.momentum must be a number in \[0, 1\)"),
    ("optimizer__decay", "linear", r"optimizer.decay must be one of cosine, constant"),
    ("optimizer__clip_global_norm", -1.0, r"optimizer.clip_global_norm must be a finite"),
    ("optimizer__warmup_steps", -5, r"optimizer.warmup_steps must be an integer >= 0"),
    ("train__steps", 0, r"train.steps must be an integer >= 1; got 0"),
    ("train__global_batch_size", -8, r"train.global_batch_size must be an integer >= 1"),
    ("train__steps_per_loop", 0, r"train.steps_per_loop must be an integer >= 1; got 0"),
    ("train__log_every", 0, r"train.log_every must be an integer >= 1"),
    ("train__profile_steps", (30, 21), r"train.profile_steps must be \(first, last\) with 1 <= "),
    ("train__profile_steps", (0, 5), r"train.profile_steps must be .*; got \(0, 5\)"),
    (
        "train__profile_steps",
        (1490, 1600),
        r"train.profile_steps must be .* <= last <= train.steps \(1500\).*; got \(1490, 1600\)",
    ),
    ("train__eval_every", -1, r"train.eval_every must be an integer >= 0; got -1"),
    ("train__checkpoint_every", 0, r"train.checkpoint_every must be an integer >= 1"),
    ("train__keep_checkpoints", 0, r"train.keep_checkpoints must be an integer >= 1"),
    ("data__source", "hdf5", r"data.source must be one of synthetic, tfrecord, csv, parquet"),
    ("data__num_features", 0, r"data.num_features must be an integer >= 1; got 0"),
    ("data__shuffle_buffer", -1, r"data.shuffle_buffer must be an integer >= 0"),
    ("data__synthetic__positive_rate", 0.0, r"positive_rate must be a number in \(0, 1\)"),
    ("data__synthetic__num_train", 0, r"data.synthetic.num_train must be an integer >= 1"),
    ("model__hidden_units", (64, 0), r"model.hidden_units must be a tuple of integers >= 1"),
    ("model__l2", -0.1, r"model.l2 must be a finite number >= 0"),
    ("model__name", "transformer", r"model.name must be one of .*mlp.*; got 'transformer'"),
    ("model__name", "no_such_module:build", r"model.name 'no_such_module:build': no module"),
]


@pytest.mark.parametrize(("field", "value", "match"), BAD, ids=[f"{f}={v}" for f, v, _ in BAD])
def test_a_bad_value_is_refused_naming_the_field_and_the_value(field, value, match):
    assert re.search(match, _error(_with(default.get_config(), **{field: value})))


def test_every_bad_field_is_listed_at_once():
    config = _with(default.get_config(), loss__gamma=-1.0, train__steps_per_loop=0)
    message = _error(config)
    assert "loss.gamma" in message
    assert "train.steps_per_loop" in message


def test_task_and_loss_must_fit_together():
    message = _error(_with(default.get_config(), loss__name="ce"))
    assert (
        "loss.name must be one of focal, bce, asl, logit_adjusted for task.name='binary'; got 'ce'"
        in message
    )
    message = _error(_with(multiclass.get_config(), loss__name="bce", task__num_classes=1))
    assert "task.num_classes must be an integer >= 2; got 1" in message
    assert (
        "loss.name must be one of focal, ce, logit_adjusted for task.name='multiclass'" in message
    )


def test_global_batch_must_split_over_the_replicas():
    config = _with(default.get_config(), train__global_batch_size=30)
    assert "train.global_batch_size 30 is not divisible by the 4 replicas" in _error(
        config, num_replicas=4
    )
    validate_config(config, num_replicas=3)


def test_file_source_paths_columns_and_feature_count_are_checked(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("a,label,b\n1,0,2\n3,1,4\n")
    config = _with(csv_config.get_config(), data__path=str(tmp_path / "missing-*.csv"))
    assert "data.path: data path" in _error(config)
    assert "no such file" in _error(config)

    def config():
        return _with(csv_config.get_config(), data__path=str(path))

    validate_config(config())
    assert re.search(
        r"data.path: data.num_features is 5 but csv data .* has 2 feature columns",
        _error(_with(config(), data__num_features=5)),
    )
    assert re.search(
        r"data.eval_path: data path .*nope\.csv': no such file",
        _error(_with(config(), data__eval_path=str(tmp_path / "nope.csv"))),
    )
    multi = _with(config(), task__name="multi_label", task__num_classes=3)
    assert "data.label_column must be 3 column(s) for task.name='multi_label'" in _error(multi)


def test_the_calibration_split_is_checked_as_the_other_splits(tmp_path):
    config = _with(default.get_config(), data__synthetic__num_calibration=-1)
    assert "data.synthetic.num_calibration must be an integer >= 0; got -1" in _error(config)
    validate_config(_with(default.get_config(), data__synthetic__num_calibration=0))
    path = tmp_path / "train.csv"
    path.write_text("a,label,b\n1,0,2\n3,1,4\n")
    (tmp_path / "wide.csv").write_text("a,label,b,c\n1,0,2,5\n")
    config = _with(csv_config.get_config(), data__path=str(path))
    validate_config(_with(config, data__calibration_path=str(path)))
    assert re.search(
        r"data.calibration_path: data.num_features is 2 but csv data .*wide\.csv' has 3",
        _error(_with(config, data__calibration_path=str(tmp_path / "wide.csv"))),
    )


def test_the_non_finite_policy_is_error_or_skip():
    validate_config(_with(default.get_config(), data__non_finite="skip"))
    assert "data.non_finite must be one of error, skip; got 'drop'" in _error(
        _with(default.get_config(), data__non_finite="drop")
    )


def test_a_warmup_longer_than_the_run_is_warned_about(caplog):
    # The images config's 50 warm-up steps in a 20-step trial run: legal, but the rate
    # would never reach its peak, and nothing said so.
    short = _with(default.get_config(), train__steps=20)
    with caplog.at_level(logging.WARNING):
        validate_config(short)
    assert re.search(
        r"optimizer.warmup_steps 50 > train.steps 20: the learning rate never reaches "
        r"optimizer.learning_rate \(0.003\)",
        caplog.text,
    ), caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        validate_config(_with(default.get_config(), train__steps=50))
    assert "warmup_steps" not in caplog.text


def _workdir_files(workdir):
    return sorted(workdir.rglob("*")) if workdir.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"loss.gamma": -1}, r"loss.gamma must be a finite number >= 0; got -1"),
        (
            {"train.steps_per_loop": 0, "optimizer.name": "rmsprop"},
            r"optimizer.name must be one of sgd, momentum, adam; got 'rmsprop'\n\s*"
            r"train.steps_per_loop must be an integer >= 1; got 0",
        ),
        # Past the run's end: nothing would be traced, and the run would say it was.
        (
            {"train.profile_steps": "(1600,1700)"},
            r"train.profile_steps must be .* <= train.steps \(1500\).*; got \(1600, 1700\)",
        ),
    ],
)
def test_cli_refuses_a_bad_config_before_writing_to_the_work_dir(tmp_path, override, match):
    workdir = tmp_path / "run"
    result = runs.run(runs.train_command("default", workdir, override), check=False)
    assert result.returncode != 0
    assert re.search(match, result.stderr), result.stderr[-3000:]
    # The list of bad fields, not a Python traceback around it.
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert _workdir_files(workdir) == []


def test_compression_needs_the_overlapped_step_and_a_wire_dtype_the_backend_sends():
    single = _with(default.get_config(), train__allreduce="single")
    single.train.allreduce_compression = "float16"
    assert 'train.allreduce must be "overlap" or "auto"' in _error(single)
    bfloat16 = default.get_config()
    bfloat16.train.allreduce_compression = "bfloat16"
    validate_config(bfloat16, distribution="mirrored")
    message = _error(bfloat16, distribution="horovod")
    assert "Horovod 0.28.1 cannot all-reduce bfloat16); got 'bfloat16'" in message
