"""`ExampleSpec`: the tf.train.Example layout of the `examples` signature, per source.

TFRecord    ExampleSpec(vector_key=data.feature_column, num_features=F)
            one feature holding the F values, as the training records hold them
CSV/Parquet ExampleSpec(column_names=(every non-label column, in file order))
            one feature per column, named as the column, one value each
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class ExampleSpec:
    """How a serialized tf.train.Example becomes the model's features [F].

    Either `vector_key`: one feature holding all F values (TFRecord sources: the
    data's `feature_column`, a float_list, or an int64_list with dtype "int64"); or
    `column_names`: one float_list feature of one value per column (CSV and Parquet
    sources: every non-label column, in file order). A missing feature fails the
    request; nothing is filled in.
    """

    vector_key: str | None = None
    num_features: int | None = None
    column_names: tuple[str, ...] | None = None
    dtype: str = "float32"

    def __post_init__(self):
        if (self.vector_key is None) == (self.column_names is None):
            raise ValueError(
                "ExampleSpec needs exactly one of vector_key (with num_features) or "
                f"column_names; got vector_key={self.vector_key!r}, "
                f"column_names={self.column_names!r}"
            )
        if self.vector_key is not None and not (self.num_features or 0) > 0:
            raise ValueError(f"ExampleSpec.num_features must be > 0; got {self.num_features!r}")
        if self.column_names is not None:
            object.__setattr__(self, "column_names", tuple(self.column_names))
        if self.dtype not in ("float32", "int64"):
            raise ValueError(f"ExampleSpec.dtype must be float32 or int64; got {self.dtype!r}")

    @property
    def width(self) -> int:
        return self.num_features if self.vector_key is not None else len(self.column_names)

    def parse(self, serialized: tf.Tensor) -> tf.Tensor:
        """float32 [None, F] features of serialized Examples [None]."""
        dtype = tf.as_dtype(self.dtype)
        if self.vector_key is not None:
            spec = {self.vector_key: tf.io.FixedLenFeature([self.num_features], dtype)}
            return tf.cast(tf.io.parse_example(serialized, spec)[self.vector_key], tf.float32)
        spec = {name: tf.io.FixedLenFeature([], dtype) for name in self.column_names}
        parsed = tf.io.parse_example(serialized, spec)
        return tf.cast(tf.stack([parsed[name] for name in self.column_names], axis=1), tf.float32)

    def describe(self) -> dict:
        if self.vector_key is not None:
            return {"feature": self.vector_key, "length": self.num_features, "dtype": self.dtype}
        return {"features": list(self.column_names), "length": 1, "dtype": self.dtype}
