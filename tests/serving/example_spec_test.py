"""ExampleSpec: a TFRecord vector or one feature per CSV/Parquet column, parsed as the
training data holds them."""

import numpy as np
import pytest
import tensorflow as tf

from focal_dist.serving import ExampleSpec


def _serialize(**features):
    def feature(values):
        values = np.atleast_1d(values)
        if values.dtype.kind == "i":
            return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    proto = tf.train.Features(feature={k: feature(v) for k, v in features.items()})
    return tf.train.Example(features=proto).SerializeToString()


def test_a_vector_feature_of_floats_or_int64s_becomes_the_feature_row():
    rows = np.array([[1.5, -2.0, 3.0], [0.0, 4.0, -1.0]], np.float32)
    spec = ExampleSpec(vector_key="features", num_features=3)
    parsed = spec.parse(tf.constant([_serialize(features=r) for r in rows]))
    np.testing.assert_array_equal(parsed.numpy(), rows)
    counts = np.array([[1, 2, 3]], np.int64)
    spec = ExampleSpec(vector_key="counts", num_features=3, dtype="int64")
    parsed = spec.parse(tf.constant([_serialize(counts=counts[0])]))
    assert parsed.dtype == tf.float32
    np.testing.assert_array_equal(parsed.numpy(), counts)


def test_one_feature_per_column_is_stacked_in_the_models_column_order():
    spec = ExampleSpec(column_names=["b", "a"])
    parsed = spec.parse(tf.constant([_serialize(a=1.0, b=2.0, label=1.0)]))
    np.testing.assert_array_equal(parsed.numpy(), [[2.0, 1.0]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="b"):
        spec.parse(tf.constant([_serialize(a=1.0)]))  # a missing column is not filled in


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one of vector_key"),
        ({"vector_key": "x", "num_features": 2, "column_names": ["a"]}, "exactly one of"),
        ({"vector_key": "x"}, "num_features must be > 0; got None"),
        (
            {"column_names": ["a"], "dtype": "string"},
            "dtype must be float32 or int64; got 'string'",
        ),
    ],
)
def test_bad_specs_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        ExampleSpec(**options)
