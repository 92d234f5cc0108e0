"""`data.source = "tfrecord"`: TFRecord files of tf.train.Example
(data/readers/tfrecord.py), read as every table source is (data/sources/tabular.py)."""

from __future__ import annotations

from focal_dist.data.files import list_files
from focal_dist.data.readers import tfrecord as reader
from focal_dist.data.sources.tabular import TableSource


class TFRecordSource(TableSource):
    name = "tfrecord"
    reader = reader
    config_fields = (*TableSource.config_fields, "feature_column")

    def serving_inputs(self) -> dict:
        key = self.options.feature_column
        kind, length = reader.feature_kind(list_files(self.paths["train"]), key)
        dtype = "int64" if kind == "int64_list" else "float32"
        return {"vector_key": key, "num_features": length, "dtype": dtype}


from_config = TFRecordSource.from_config
