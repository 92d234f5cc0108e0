"""`model.name = "module:function"`: the user's own model, from PYTHONPATH, through the CLI."""

import subprocess
import sys
import textwrap

import keras
import pytest
import tensorflow as tf

from focal_dist import models
from tests.training import runs

USER_MODELS = """
import keras


def small_net(*, num_outputs, input_shape, seed, width=3):
    inputs = keras.Input(input_shape, name="user_features")
    hidden = keras.layers.Dense(
        width,
        activation="relu",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        name="user_hidden",
    )(inputs)
    logits = keras.layers.Dense(num_outputs, name="user_logits")(hidden)
    return keras.Model(inputs, logits, name="user_small_net")


def wrong_width(*, num_outputs, input_shape):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.layers.Dense(num_outputs + 4)(inputs))


def not_a_model(*, num_outputs, input_shape):
    return "a string"


def only_num_outputs(*, num_outputs):
    return None


class Subclassed(keras.Model):
    def __init__(self, num_outputs):
        super().__init__(name="user_subclassed")
        self.dense = keras.layers.Dense(num_outputs)

    def call(self, features):
        return self.dense(features)


def subclassed(*, num_outputs, input_shape):
    return Subclassed(num_outputs)


NOT_CALLABLE = 3
"""


@pytest.fixture(scope="module")
def user_module(tmp_path_factory):
    """A module of model functions in a folder that is then put on sys.path."""
    folder = tmp_path_factory.mktemp("user_code")
    (folder / "focal_dist_user_models.py").write_text(USER_MODELS)
    (folder / "focal_dist_user_broken.py").write_text("import some_missing_dependency_xyz\n")
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop("focal_dist_user_models", None)
    sys.modules.pop("focal_dist_user_broken", None)


def test_user_function_gets_num_outputs_input_shape_seed_and_kwargs(user_module):
    section = {"name": "focal_dist_user_models:small_net", "kwargs": {"width": 6}}
    model = models.build_model(section, num_outputs=4, input_shape=(9,), seed=2)
    assert model.name == "user_small_net"
    assert model.get_layer("user_hidden").units == 6
    assert model.output_shape == (None, 4)


def test_subclassed_user_model_is_built_before_training(user_module):
    model = models.build_model("focal_dist_user_models:subclassed", num_outputs=2, input_shape=(5,))
    # Variables exist now, so the trainer can build its optimizer on them.
    assert [tuple(v.shape) for v in model.trainable_variables] == [(5, 2), (2,)]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "no_such_module_xyz:build",
            r"'no_such_module_xyz:build': no module named "
            r"'no_such_module_xyz' on sys.path; put the directory that holds it on PYTHONPATH",
        ),
        (
            "focal_dist_user_broken:build",
            r"'focal_dist_user_broken:build': importing 'focal_dist_user_broken' failed: "
            r"No module named 'some_missing_dependency_xyz'",
        ),
        (
            "focal_dist_user_models:missing",
            r"'focal_dist_user_models:missing': module "
            r"'focal_dist_user_models' \(.*\) has no attribute 'missing'",
        ),
        (
            "focal_dist_user_models:NOT_CALLABLE",
            r"'focal_dist_user_models:NOT_CALLABLE': "
            r"'NOT_CALLABLE' is a int, not a function",
        ),
        (
            "focal_dist_user_models:not_a_model",
            r"'focal_dist_user_models:not_a_model' returned "
            r"a str; expected a keras.Model mapping \[batch, 7\] features to \[batch, 3\] logits",
        ),
        (
            "focal_dist_user_models:wrong_width",
            r"'focal_dist_user_models:wrong_width' returned "
            r"a model whose output has shape \(None, 7\); expected .* \(num_outputs=3\)",
        ),
        (
            "focal_dist_user_models:only_num_outputs",
            r"'focal_dist_user_models:only_num_outputs':"
            r" calling it with keyword arguments \['input_shape', 'num_outputs'\] failed",
        ),
        ("my models:build", r"model.name 'my models:build' is not of the form 'module:function'"),
        ("a:b:c", r"model.name 'a:b:c' is not of the form 'module:function'"),
    ],
)
def test_bad_model_function_is_an_error_naming_the_string(user_module, name, message):
    with pytest.raises(ValueError, match=message):
        models.build_model(name, num_outputs=3, input_shape=(7,))


def test_l2_for_a_function_without_l2_is_refused(user_module):
    with pytest.raises(
        ValueError,
        match=r"model.l2=0.01 is set but model.name "
        r"'focal_dist_user_models:small_net' takes no 'l2' argument",
    ):
        models.build_model(
            "focal_dist_user_models:small_net", num_outputs=1, input_shape=(3,), l2=0.01
        )


CONFIG = """
from focal_dist.configs import default


def get_config():
    config = default.get_config()
    config.model.name = "focal_dist_user_models:small_net"
    config.model.kwargs.width = 5
    config.data.num_features = 8
    config.data.synthetic.num_train = 256
    config.data.synthetic.num_eval = 128
    config.train.steps = 4
    config.train.global_batch_size = 32
    config.train.steps_per_loop = 2
    config.train.eval_every = 0
    return config
"""


@pytest.mark.slow
def test_cli_trains_checkpoints_and_exports_the_user_model_from_outside_the_checkout(
    user_module, tmp_path
):
    (tmp_path / "my_config.py").write_text(textwrap.dedent(CONFIG))
    workdir = tmp_path / "run"
    # Only the user's folder on PYTHONPATH and the working directory outside the
    # repository: focal_dist and its configs come from the installed package.
    env = {**runs.env(), "PYTHONPATH": str(user_module)}
    result = subprocess.run(
        [sys.executable, "-m", "focal_dist.train", "--config=my_config.py", f"--workdir={workdir}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    summary = runs.summary(workdir)
    assert summary["step"] == 4
    assert summary["config"]["model"]["name"] == "focal_dist_user_models:small_net"
    exported = keras.models.load_model(workdir / "export" / "model.keras", compile=False)
    assert exported.name == "user_small_net"
    assert [layer.name for layer in exported.layers] == [
        "user_features",
        "user_hidden",
        "user_logits",
    ]
    assert exported.get_layer("user_hidden").units == 5
    assert exported.output_shape == (None, 1)
    checkpoint = tf.train.latest_checkpoint(workdir / "checkpoints")
    shapes = [shape for _, shape in tf.train.list_variables(checkpoint)]
    assert [8, 5] in shapes
    assert [5, 1] in shapes
