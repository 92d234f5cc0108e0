"""`data.source = "parquet"`: Parquet files (data/readers/parquet.py), read as
every table source is (data/sources/tabular.py)."""

from __future__ import annotations

from focal_dist.data.readers import parquet as reader
from focal_dist.data.sources.tabular import TableSource


class ParquetSource(TableSource):
    name = "parquet"
    reader = reader


from_config = ParquetSource.from_config
