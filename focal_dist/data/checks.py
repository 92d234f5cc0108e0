"""In-pipeline checks of file data: finite features, finite labels in the task's range.

Per batch the checks cost one vectorised test per value, one reduction each and one
branch; only a failing batch finds the first bad value and formats the message, which
names the file, the column (or feature key and index), the row (or record) and the
value, and stops the input pipeline with `tf.errors.InvalidArgumentError`.

How, and why so: the failing branch parses the message as a number (StringToNumber
raises an error that carries it), and the branch's result is added to the labels.
A `tf.debugging.Assert` would make the branch stateful, and a stateful branch cost
tf.data here about twice as much per batch; a stateless op is not run for a control
dependency alone (Grappler prunes it), hence the data dependency on the labels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable, Sequence

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Test:
    """`ok` ([N, K] bool) over `values` ([N, K]), one column name per K, and what a
    valid value is (`problem`, e.g. "binary labels must be 0 or 1")."""

    ok: tf.Tensor
    values: tf.Tensor
    names: Sequence[str]
    problem: str


def _default_row_text(row: tf.Tensor) -> tf.Tensor:
    return tf.strings.join(["row ", tf.strings.as_string(row)])


def _as_text(value: tf.Tensor) -> tf.Tensor:
    if value.dtype == tf.string:
        return tf.where(tf.equal(value, ""), "an empty field", value)
    if value.dtype.is_integer:
        return tf.strings.as_string(value)
    return tf.strings.as_string(value, shortest=True)


def _message(test: Test, where, rows, row_text) -> tf.Tensor:
    """ "<where>, <column>, <row>: <problem>, got <value>" for the first False of test.ok."""
    bad = tf.reshape(tf.cast(tf.logical_not(test.ok), tf.int8), [-1])
    first = tf.argmax(bad, output_type=tf.int64)  # the first maximum
    width = tf.shape(test.ok, out_type=tf.int64)[1]
    value = tf.gather(tf.reshape(test.values, [-1]), first)
    return tf.strings.join(
        [
            where,
            ", ",
            tf.gather(tf.constant(list(test.names)), first % width),
            ", ",
            row_text(tf.gather(rows, first // width)),
            ": ",
            test.problem,
            ", got ",
            _as_text(value),
        ]
    )


def guard(tests: Sequence[Test], *, where, rows, row_text=_default_row_text) -> tf.Tensor:
    """A float 0, or an InvalidArgumentError naming the first failing test's first bad
    value. Its result must be used (see `checked`), or it never runs."""
    passed = [tf.reduce_all(test.ok) for test in tests]

    def fail():
        message = tf.constant("")
        for test, test_passed in reversed(list(zip(tests, passed, strict=True))):
            message = tf.where(test_passed, message, _message(test, where, rows, row_text))
        return tf.strings.to_number(tf.strings.join(["\n\nbad data: ", message, "\n"]))

    all_passed = passed[0]
    for test_passed in passed[1:]:
        all_passed = tf.logical_and(all_passed, test_passed)
    return tf.cond(all_passed, lambda: tf.constant(0.0), fail)


def label_problem(labels: tf.Tensor, label_mode: str | None, num_classes: int | None):
    """([N, C] bool ok or None when every value is valid, what a valid label is).

    Comparisons with NaN are False, so the range tests also refuse NaN (and inf).
    """
    if label_mode in ("binary", "multi_label"):
        ok = tf.logical_or(tf.equal(labels, 0), tf.equal(labels, 1))
        return ok, f"{label_mode} labels must be 0 or 1"
    if label_mode == "sparse":
        ok = tf.logical_and(labels >= 0, labels < num_classes)
        if labels.dtype.is_floating:
            ok = tf.logical_and(ok, tf.equal(labels, tf.round(labels)))
        return ok, f"class labels must be integers in [0, {num_classes})"
    if labels.dtype.is_floating:
        return tf.math.is_finite(labels), "labels must be finite"
    return None, ""


def label_test(
    labels: tf.Tensor,
    names: Sequence[str],
    label_mode: str | None = None,
    num_classes: int | None = None,
    column_word: str = "column",
) -> Test | None:
    """The test of [N] or [N, C] labels for `label_mode`; None when every value passes."""
    as_matrix = tf.reshape(labels, [tf.shape(labels)[0], -1])
    ok, problem = label_problem(as_matrix, label_mode, num_classes)
    if ok is None:
        return None
    return Test(ok, as_matrix, [f"{column_word} {n}" for n in names], problem)


def feature_test(features: tf.Tensor, names: Sequence[str], column_word: str = "column") -> Test:
    """The test of float [N, K] features: every value finite."""
    return Test(
        tf.math.is_finite(features),
        features,
        [f"{column_word} {n}" for n in names],
        "feature values must be finite (NaN and inf are refused)",
    )


def value_tests(
    features: tf.Tensor | None,
    labels: tf.Tensor | None,
    *,
    feature_names: Sequence[str],
    label_names: Sequence[str],
    label_mode: str | None = None,
    num_classes: int | None = None,
    column_word: str = "column",
) -> list[Test]:
    """The tests of one batch: labels valid for `label_mode`, then features finite."""
    tests = []
    if labels is not None:
        tests.append(label_test(labels, label_names, label_mode, num_classes, column_word))
    if features is not None:
        tests.append(feature_test(features, feature_names, column_word))
    return [test for test in tests if test is not None]


def valid_rows(tests: Sequence[Test]) -> tf.Tensor:
    """bool [N]: the rows on which every test passes."""
    valid = tf.reduce_all(tests[0].ok, axis=1)
    for test in tests[1:]:
        valid = tf.logical_and(valid, tf.reduce_all(test.ok, axis=1))
    return valid


def bad_values(test: Test | None, width: int) -> tf.Tensor:
    """int64 [width]: the values of each column that fail `test` (zeros without one)."""
    if test is None:
        return tf.zeros([width], tf.int64)
    return tf.reduce_sum(tf.cast(tf.logical_not(test.ok), tf.int64), axis=0)


def carry(result: tf.Tensor, tensor: tf.Tensor) -> tf.Tensor:
    """`tensor` + the guard's 0: a data dependency, so that the guard runs."""
    return tensor + tf.cast(result, tensor.dtype)


def checked(
    features: tf.Tensor | None,
    labels: tf.Tensor | None,
    *,
    where,
    rows: tf.Tensor,
    feature_names: Sequence[str],
    label_names: Sequence[str],
    label_mode: str | None = None,
    num_classes: int | None = None,
    row_text: Callable[[tf.Tensor], tf.Tensor] = _default_row_text,
    column_word: str = "column",
    first: Sequence[Test] = (),
):
    """`(features, labels)` after their checks; `labels` alone when `features` is None,
    `features` alone when `labels` is None (prediction rows).

    Args:
      features: float [N, K] or None.
      labels: [N] or [N, C], integer or float, or None.
      where: what holds the batch, e.g. "CSV file /data/a.csv" (str or string tensor).
      rows: int64 [N], each row's index in its file.
      feature_names: K names, one per feature column.
      label_names: one name per label column (C, or 1 when labels are [N]).
      label_mode: "binary" or "multi_label" (values 0/1), "sparse" (ids in
        [0, num_classes)), or None (labels only need to be finite).
      row_text: int64 row -> its description in messages ("row 5 (line 7)").
      column_word: what a name is ("column"; "feature" for TFRecord keys).
      first: tests reported before these (e.g. CSV text that is not a number).
    """
    tests = list(first) + value_tests(
        features,
        labels,
        feature_names=feature_names,
        label_names=label_names,
        label_mode=label_mode,
        num_classes=num_classes,
        column_word=column_word,
    )
    if tests:
        result = guard(tests, where=where, rows=rows, row_text=row_text)
        # The smallest tensor of the batch carries the checks (+ 0).
        if labels is not None:
            labels = carry(result, labels)
        else:
            features = carry(result, features)
    if features is None:
        return labels
    return features if labels is None else (features, labels)


@contextlib.contextmanager
def bad_data_as_data_error():
    """Turns a value check failing inside tf.data into a DataError of its message alone.

    The checks fail with their message between TensorFlow's own lines; a user needs only
    what is wrong with which file, column and row.
    """
    from focal_dist.data.files import DataError

    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        found = re.search(r"bad data: [^\n]*", error.message)
        if found is None:
            raise
        raise DataError(found.group(0)) from None
