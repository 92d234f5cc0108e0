"""Every `loss.*` value either changes the loss the task trains with or is refused.

Whether a field reaches the loss is measured, not read from a table: the task's own
per-example (per-pixel) loss is computed on fixed labels and logits with the field at
its default and at another value. Where the two differ, the config check must accept the
value; where they are equal, it must refuse it, naming the key and its value.
"""

import dataclasses

import numpy as np
import pytest

from focal_dist.configs import default, segmentation
from focal_dist.distribute import get_backend
from focal_dist.tasks import get_task
from focal_dist.training.config_check import ConfigError, validate_config

# Another value for each field (its default is configs/default.py's).
PROBES = {
    "gamma": 1.0,
    "alpha": 0.6,
    "gamma_schedule": "flsd53",
    "poly_epsilon": 1.0,
    "tau": 0.5,
    "gamma_pos": 1.0,
    "gamma_neg": 2.0,
    "clip": 0.2,
    "apply_class_balancing": True,
    "label_smoothing": 0.1,
    "beta": 0.9,
}
COMBINATIONS = [
    *((task, loss) for task in ("binary", "multi_label") for loss in ("focal", "bce", "asl")),
    *((task, "logit_adjusted") for task in ("binary", "multi_label", "multiclass")),
    ("multiclass", "focal"),
    ("multiclass", "ce"),
    ("segmentation", "focal"),
    ("segmentation", "ce"),
]


def _config(task, loss):
    if task == "segmentation":
        config = segmentation.get_config()
        config.data.synthetic.num_train = 16
        config.data.synthetic.num_eval = 16
    else:
        config = default.get_config()
        config.data.num_features = 4
        config.data.synthetic.num_train = 256
        config.data.synthetic.num_eval = 64
        config.data.synthetic.num_calibration = 64
        config.data.synthetic.positive_rate = 0.2
        config.task.name = task
        config.task.num_classes = 3
    config.loss.name = loss
    if loss in ("asl", "logit_adjusted"):
        config.loss.class_weights = "none"
    return config


def _labels_and_logits(task):
    rng = np.random.default_rng(0)
    if task == "segmentation":
        return rng.integers(0, 3, (2, 8, 8)), rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    if task == "multiclass":
        return rng.integers(0, 3, 16), rng.normal(size=(16, 3)).astype(np.float32)
    outputs = 1 if task == "binary" else 3
    labels = (rng.random((16, outputs)) < 0.3).astype(np.float32)
    return labels, 3 * rng.normal(size=(16, outputs)).astype(np.float32)


@pytest.fixture(scope="module")
def prepared():
    """Each combination's task, its label pass done once (the probes leave it as is)."""
    backend = get_backend("default")
    tasks = {}
    for task, loss in COMBINATIONS:
        tasks[task, loss] = get_task(_config(task, loss))
        tasks[task, loss].prepare(backend)
    return tasks


def _loss(task, config, labels, logits) -> np.ndarray:
    task.config = config
    return task.loss_terms()[0].per_element(labels, logits).numpy()


@pytest.mark.parametrize(("task_name", "loss"), COMBINATIONS, ids="-".join)
def test_a_loss_value_that_changes_nothing_is_refused_and_one_that_does_is_not(
    prepared, task_name, loss
):
    task = prepared[task_name, loss]
    labels, logits = _labels_and_logits(task_name)
    base = _config(task_name, loss)
    reference = _loss(task, base, labels, logits)
    validate_config(base)
    reached, refused = [], []
    for field, value in PROBES.items():
        config = _config(task_name, loss)
        config.loss[field] = value
        changes = not np.allclose(_loss(task, config, labels, logits), reference, atol=1e-7)
        if changes:
            validate_config(config)  # raises if a value that acts is refused
            reached.append(field)
        else:
            with pytest.raises(ConfigError, match=rf"loss.{field}={value!r} has no effect"):
                validate_config(config)
            refused.append(field)
    # Each loss reads something (the probes are not all inert).
    assert reached or loss == "ce", (reached, refused)
    print(f"{task_name}/{loss}: reached {reached}; refused {refused}")


def test_beta_is_accepted_with_the_effective_number_weights_that_read_it():
    config = _config("binary", "focal")
    config.loss.class_weights = "effective_number"
    config.loss.beta = 0.9
    validate_config(config)


def test_poly_1_cross_entropy_is_ce_plus_epsilon_times_one_minus_p_t(prepared):
    # Leng et al.'s Poly-1 (optax's poly_loss_cross_entropy), in float64 NumPy.
    task = prepared["multiclass", "ce"]
    labels, logits = _labels_and_logits("multiclass")
    config = _config("multiclass", "ce")
    config.loss.poly_epsilon = 1.0
    config.loss.class_weights = "none"
    counted, task.counts = task.counts, dataclasses.replace(task.counts, class_weight=None)
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    p_t = p[np.arange(len(labels)), labels]
    np.testing.assert_allclose(
        _loss(task, config, labels, logits), -np.log(p_t) + (1.0 - p_t), rtol=1e-5
    )
    task.counts = counted


def test_on_the_sigmoid_path_alpha_reaches_the_loss_once_class_balancing_is_applied(prepared):
    task = prepared["binary", "focal"]
    labels, logits = _labels_and_logits("binary")
    balanced = _config("binary", "focal")
    balanced.loss.apply_class_balancing = True
    reference = _loss(task, balanced, labels, logits)
    balanced.loss.alpha = 0.6
    validate_config(balanced)
    assert not np.allclose(_loss(task, balanced, labels, logits), reference, atol=1e-7)
    unbalanced = _config("binary", "focal")
    unbalanced.loss.alpha = 0.6
    with pytest.raises(ConfigError, match=r"loss.apply_class_balancing=True to apply it"):
        validate_config(unbalanced)


@pytest.mark.parametrize("task_name", ["binary", "multi_label"])
def test_alpha_one_of_a_shipped_softmax_config_is_accepted_on_a_sigmoid_task(task_name):
    # configs/images.py sets alpha = 1.0 (no class weighed) for its multiclass task; a
    # user who switches it to a sigmoid task is not refused for a value that acts as set.
    from focal_dist.configs import images

    config = images.get_config()
    config.task.name = task_name
    config.data.path = "unused"
    assert config.loss.alpha == 1.0
    message = ""
    try:
        validate_config(config)
    except ConfigError as error:
        message = str(error)
    assert "loss.alpha" not in message


def test_the_table_of_which_loss_fits_which_task_is_what_trains_and_the_rest_is_refused():
    from focal_dist.tasks.loss_builder import TASKS_OF, check_fits

    fitting = {(task, loss) for loss, tasks in TASKS_OF.items() for task in tasks}
    assert fitting == set(COMBINATIONS)
    for task in ("binary", "multi_label", "multiclass", "segmentation"):
        for loss in TASKS_OF:
            if (task, loss) in fitting:
                continue
            config = _config(task, loss)
            named = sorted(name for t, name in COMBINATIONS if t == task)
            with pytest.raises(ConfigError, match=rf"loss.name.*for task.name={task!r}") as error:
                validate_config(config)
            assert all(name in str(error.value) for name in named), str(error.value)
            with pytest.raises(ValueError, match=rf"got {loss!r}"):
                check_fits(loss, task)
