"""Data sources by name (`config.data.source`), one module each, behind `Source`.

A new source is a new module with a `Source` subclass and `from_config(data, *,
label_mode, num_classes)`, and one line here.
"""

from __future__ import annotations

from focal_dist.data.sources import (
    csv,
    image_folder,
    image_tfrecord,
    parquet,
    segmentation_files,
    segmentation_synthetic,
    synthetic,
    tfrecord,
)
from focal_dist.data.sources.base import SPLITS, Source

_FROM_CONFIG = {
    "synthetic": synthetic.from_config,
    "tfrecord": tfrecord.from_config,
    "csv": csv.from_config,
    "parquet": parquet.from_config,
    "image_tfrecord": image_tfrecord.from_config,
    "image_folder": image_folder.from_config,
    # Images with per-pixel class masks (task.name = "segmentation").
    "segmentation_folder": segmentation_files.SegmentationFolderSource.from_config,
    "segmentation_tfrecord": segmentation_files.SegmentationTFRecordSource.from_config,
    "segmentation_synthetic": segmentation_synthetic.from_config,
}
SOURCES: tuple[str, ...] = tuple(_FROM_CONFIG)
SEGMENTATION_SOURCES = ("segmentation_folder", "segmentation_tfrecord", "segmentation_synthetic")

__all__ = ["SEGMENTATION_SOURCES", "SOURCES", "SPLITS", "Source", "get_source"]


def get_source(data, *, label_mode: str, num_classes: int) -> Source:
    """The source named `data.source`, built from `config.data`.

    Args:
      data: the config's `data` ConfigDict (configs/default.py's fields).
      label_mode: "binary", "multi_label" or "sparse": the labels' layout.
      num_classes: outputs C (1 for binary).

    Raises:
      ValueError: `data.source` is not one of SOURCES (the known names are listed), or
        the source's own fields are wrong (e.g. no data.path for a file source).
    """
    if data.source not in _FROM_CONFIG:
        raise ValueError(f"data.source must be one of {', '.join(SOURCES)}; got {data.source!r}")
    return _FROM_CONFIG[data.source](data, label_mode=label_mode, num_classes=num_classes)
