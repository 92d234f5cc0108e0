"""`data.source = "csv"`: CSV files with a header row (data/readers/csv.py), read as
every table source is (data/sources/tabular.py)."""

from __future__ import annotations

from focal_dist.data.readers import csv as reader
from focal_dist.data.sources.tabular import TableSource


class CsvSource(TableSource):
    name = "csv"
    reader = reader


from_config = CsvSource.from_config
