"""Input data: the embedded synthetic set and file readers, sharded per input pipeline.

`get_source(config.data, ...)` (data/sources/) is what a task reads; `make_dataset` reads
table files directly (data/readers/).
"""

from focal_dist.data.files import DataError, ReaderOptions, list_files, source_from_path
from focal_dist.data.label_modes import LABEL_MODES
from focal_dist.data.readers.tables import (
    FILE_SOURCES,
    make_dataset,
    num_features_in_files,
    resolve_num_features,
)
from focal_dist.data.skipped_rows import SkippedRows
from focal_dist.data.sources import SEGMENTATION_SOURCES, SOURCES, Source, get_source

__all__ = [
    "FILE_SOURCES",
    "LABEL_MODES",
    "SEGMENTATION_SOURCES",
    "SOURCES",
    "DataError",
    "ReaderOptions",
    "SkippedRows",
    "Source",
    "get_source",
    "list_files",
    "make_dataset",
    "num_features_in_files",
    "resolve_num_features",
    "source_from_path",
]
