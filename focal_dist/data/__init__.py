"""Input data: the embedded synthetic set and file readers, sharded per input pipeline."""

from focal_dist.data.sources import (
    SOURCES,
    DataError,
    list_files,
    make_dataset,
    num_features_in_files,
    resolve_num_features,
    source_from_path,
)

__all__ = [
    "SOURCES",
    "DataError",
    "list_files",
    "make_dataset",
    "num_features_in_files",
    "resolve_num_features",
    "source_from_path",
]
