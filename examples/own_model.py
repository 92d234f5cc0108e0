"""Your own Keras model and data, trained by focal_dist under any distribution.

    python examples/own_model.py --workdir=/tmp/own
    python examples/own_model.py --workdir=/tmp/own --distribution=mirrored --num_cpu_devices=2
    horovodrun -np 2 -H localhost:2 python examples/own_model.py --workdir=/tmp/own \
        --distribution=horovod
"""

import functools

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from focal_dist import configs, losses
from focal_dist.training import KerasTask, train_task

flags.DEFINE_string("workdir", None, "Checkpoints, TensorBoard logs, summary.json, export.")
flags.DEFINE_string("distribution", "default", "default, mirrored, multiworker or horovod.")
flags.DEFINE_integer("num_cpu_devices", None, "mirrored: split the CPU into N devices.")
FLAGS = flags.FLAGS


def build_model():  # Seeded: every worker must build the same initial model.
    init = keras.initializers.GlorotUniform(seed=0)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, activation="relu", kernel_initializer=init),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1, kernel_initializer=init),  # logits
        ]
    )


def examples(seed, count):  # Unbatched (features, label) pairs: 1 positive in ~10.
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(count, 8, 8, 1)).astype("float32")
    labels = (images[:, 2:6, 2:6].mean(axis=(1, 2, 3)) > 0.3).astype("float32")
    return tf.data.Dataset.from_tensor_slices((images, labels[:, None]))


def main(argv):
    config = configs.get_config("default")  # The loop's settings; override any field.
    config.train.steps, config.train.global_batch_size, config.train.steps_per_loop = 60, 64, 10
    config.train.eval_every, config.train.checkpoint_every = 30, 30
    config.optimizer.learning_rate = 0.01
    task = KerasTask(
        model_fn=build_model,
        train_examples=lambda: examples(seed=0, count=1000),
        eval_examples=lambda: examples(seed=1, count=500),
        per_example_loss=functools.partial(
            losses.binary_focal_crossentropy, gamma=2.0, alpha=0.75, from_logits=True
        ),
        num_outputs=1,
    )
    summary = train_task(
        task,
        workdir=FLAGS.workdir,
        config=config,
        distribution=FLAGS.distribution,
        num_cpu_devices=FLAGS.num_cpu_devices,
    )
    print("step", summary["step"], "eval PR-AUC", summary["eval"].get("pr_auc"))


if __name__ == "__main__":
    flags.mark_flag_as_required("workdir")
    app.run(main)
