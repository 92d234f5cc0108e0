"""Long-tailed digits: macro-F1 and balanced accuracy of one small model per loss.

scikit-learn's digits (bundled, 8x8 images, about 180 per class) subsampled per class to
a 100:1 exponential tail: in each repeat the classes are put in a random order and class
rank r keeps round(100 * 100^(-r / 9)) training images (100, 60, 36, ..., 2, 1) and
3/4 as many evaluation images (at least 1; 75, 45, 27, ..., 2, 1), separate ones. Every
loss trains the same MLP (64 tanh units) from the same initial weights with the same
optimizer (Adam), steps and full batch, in a plain TF2 loop (tf.GradientTape), and is
scored on the same evaluation images. The table gives mean and standard deviation over
the repeats, and a third column: balanced accuracy on every image not used for training
(the same quantity, per-class recall averaged, with far less noise than the few tail
images of the evaluation split).

    .venv/bin/python bench/long_tail.py [--repeats=10] [--steps=300]

Losses: ce (softmax cross-entropy), focal (gamma 2), focal+flsd53, logit_adjusted
(tau 1, log prior of the training counts; predicts with the raw logits), ce+post-hoc
(the ce model's logits minus log prior at prediction), asl (one-vs-rest: each of the 10
outputs a sigmoid against the one-hot label, gamma_neg 4, gamma_pos 0, clip 0.05;
predicts the argmax output).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from absl import app, flags
from sklearn.datasets import load_digits
from sklearn.metrics import balanced_accuracy_score, f1_score

from focal_dist import losses as fl

FLAGS = flags.FLAGS
flags.DEFINE_integer("repeats", 10, "Subsamples (and initial weights) to average over.")
flags.DEFINE_integer("steps", 300, "Full-batch Adam steps per model.")
flags.DEFINE_float("learning_rate", 0.01, "Adam's learning rate, the same for every loss.")
flags.DEFINE_float("imbalance", 100.0, "Head-to-tail ratio of the training counts.")

NUM_CLASSES = 10


def _split(rng, labels):
    """Indices of a long-tailed train and evaluation split and of every non-train image."""
    order = rng.permutation(NUM_CLASSES)
    train, evaluation = [], []
    for rank, label in enumerate(order):
        size = round(100 * FLAGS.imbalance ** (-rank / (NUM_CLASSES - 1)))
        images = rng.permutation(np.flatnonzero(labels == label))
        train.append(images[:size])
        evaluation.append(images[size : size + max(1, round(0.75 * size))])
    train = np.concatenate(train)
    held_out = np.setdiff1d(np.arange(len(labels)), train)
    return train, np.concatenate(evaluation), held_out


def _model(seed):
    tf.keras.utils.set_random_seed(seed)
    return tf.keras.Sequential(
        [
            tf.keras.Input((64,)),
            tf.keras.layers.Dense(64, activation="tanh"),
            tf.keras.layers.Dense(NUM_CLASSES),
        ]
    )


def _losses(log_prior):
    one_vs_rest = lambda y: tf.one_hot(y, NUM_CLASSES)  # noqa: E731
    return {
        "ce": lambda y, z: fl.sparse_categorical_focal_crossentropy(
            y, z, gamma=0.0, alpha=1.0, from_logits=True
        ),
        "focal": lambda y, z: fl.sparse_categorical_focal_crossentropy(
            y, z, gamma=2.0, alpha=1.0, from_logits=True
        ),
        "focal+flsd53": lambda y, z: fl.sparse_categorical_focal_crossentropy(
            y, z, alpha=1.0, gamma_schedule="flsd53", from_logits=True
        ),
        "logit_adjusted": lambda y, z: fl.logit_adjusted_crossentropy(
            y, z, log_prior=log_prior, tau=1.0
        ),
        "asl": lambda y, z: fl.asymmetric_loss(
            one_vs_rest(y), z, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, from_logits=True
        ),
    }


def _train(loss_fn, x, y, seed):
    model = _model(seed)
    optimizer = tf.keras.optimizers.Adam(FLAGS.learning_rate)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = fl.compute_global_loss(loss_fn(y, model(x, training=True)))
        optimizer.apply_gradients(
            zip(
                tape.gradient(loss, model.trainable_variables),
                model.trainable_variables,
                strict=True,
            )
        )
        return loss

    for _ in range(FLAGS.steps):
        step()
    return model


def _scores(labels, logits):
    predicted = np.argmax(logits, axis=-1)
    return (
        f1_score(
            labels, predicted, average="macro", labels=np.arange(NUM_CLASSES), zero_division=0
        ),
        balanced_accuracy_score(labels, predicted),
    )


def main(argv):
    del argv
    digits = load_digits()
    features = (digits.data / 16.0).astype(np.float32)
    labels = digits.target
    results: dict[str, list] = {}
    for repeat in range(FLAGS.repeats):
        rng = np.random.default_rng(repeat)
        train, evaluation, held_out = _split(rng, labels)
        log_prior = fl.log_prior_from_counts(np.bincount(labels[train], minlength=NUM_CLASSES))
        x, y = tf.constant(features[train]), tf.constant(labels[train])
        for name, loss_fn in _losses(log_prior).items():
            model = _train(loss_fn, x, y, seed=repeat)
            outputs = {name: model(features).numpy()}
            if name == "ce":
                adjusted = fl.adjust_logits(outputs[name], log_prior=log_prior).numpy()
                outputs["ce+post-hoc"] = adjusted
            for row, logits in outputs.items():
                f1, balanced = _scores(labels[evaluation], logits[evaluation])
                _, held_out_balanced = _scores(labels[held_out], logits[held_out])
                results.setdefault(row, []).append((f1, balanced, held_out_balanced))
        print(f"repeat {repeat + 1}/{FLAGS.repeats}: {len(train)} train, {len(evaluation)} eval")
    print(
        f"\n{FLAGS.imbalance:.0f}:1 tail, {FLAGS.repeats} repeats, {FLAGS.steps} Adam steps "
        f"(lr {FLAGS.learning_rate}); mean ± std\n"
    )
    print(
        "| loss | macro-F1 (eval) | balanced accuracy (eval) | balanced accuracy (all held out) |"
    )
    print("| --- | --- | --- | --- |")
    for name, values in results.items():
        mean, std = np.mean(values, axis=0), np.std(values, axis=0)
        cells = " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(mean, std, strict=True))
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    app.run(main)
