"""`data.source = "tfrecord"`: TFRecord files of tf.train.Example
(data/readers/tfrecord.py), read as every table source is (data/sources/tabular.py)."""

from __future__ import annotations

from focal_dist.data.readers import tfrecord as reader
from focal_dist.data.sources.tabular import TableSource


class TFRecordSource(TableSource):
    name = "tfrecord"
    reader = reader


from_config = TFRecordSource.from_config
