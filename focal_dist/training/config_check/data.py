"""The data: each source's fields, and for file sources the files themselves (the path
must exist and `data.num_features` must be 0, read from the files, or match them)."""

from __future__ import annotations

import tensorflow as tf

from focal_dist.data import FILE_SOURCES, SOURCES, DataError, resolve_num_features
from focal_dist.data.bad_files import BAD_FILES
from focal_dist.data.files import NON_FINITE, label_columns
from focal_dist.training.config_check.checker import MISSING, Checker, get, is_int

# The sources whose images are files of their own, which data.bad_files=skip leaves out.
IMAGE_FOLDERS = ("image_folder", "segmentation_folder")


def _check_synthetic(check: Checker, config) -> None:
    check.integer("data.num_features", 1)
    check.integer("data.synthetic.num_train", 1)
    check.integer("data.synthetic.num_eval", 1)
    check.integer("data.synthetic.num_calibration", 0)
    check.number("data.synthetic.positive_rate", 0.0, 1.0, open_low=True, open_high=True)
    check.number("data.synthetic.label_noise", 0.0, 1.0)
    check.number("data.synthetic.hard_fraction", 0.0, 1.0)
    check.integer("data.synthetic.seed", 0)


def _check_images(check: Checker, config) -> None:
    size = get(config, "data.image_size")
    sizes = size if isinstance(size, (tuple, list)) else (size,)
    if size is not MISSING and not (
        len(sizes) in (1, 2) and all(is_int(u) and u >= 1 for u in sizes)
    ):
        check.fail("data.image_size", "an integer >= 1 or (height, width)", size)
    check.one_of("data.channels", (1, 3))
    check.flag("data.augment")
    check.number("data.crop_min_area", 0.0, 1.0, open_low=True)
    for field in ("data.path", "data.eval_path", "data.calibration_path"):
        path = get(config, field)
        if path is MISSING or not path:
            continue
        if not any(tf.io.gfile.glob(p.strip()) for p in path.split(",")):
            check.fail(field, "an existing folder or files", path)


def _check_files(check: Checker, config, source: str) -> None:
    """Paths exist, label columns fit the task, num_features is 0 or the files' count."""
    data = config.data
    task = get(config, "task.name")
    labels = label_columns(data.label_column) if data.label_column else []
    if not labels:
        check.fail("data.label_column", "a column name (comma-separated for multi-label)", "")
        return
    expected = get(config, "task.num_classes") if task == "multi_label" else 1
    if source != "tfrecord" and len(labels) != expected:
        check.fail(
            "data.label_column",
            f"{expected} column(s) for task.name={task!r} with task.num_classes={expected}",
            data.label_column,
        )
        return
    num_features = get(config, "data.num_features")
    if num_features is None:
        num_features = 0
    if not (is_int(num_features) and num_features >= 0):
        return  # reported by the integer check
    for field in ("data.path", "data.eval_path", "data.calibration_path"):
        path = get(config, field)
        if path is MISSING or not path:
            continue
        try:
            num_features = resolve_num_features(
                source,
                path,
                num_features,
                label_column=data.label_column,
                feature_column=data.feature_column,
            )
        except DataError as error:
            check.errors.append(f"{field}: {error}")


def _check_bad_files(check: Checker, config, source) -> None:
    check.one_of("data.bad_files", BAD_FILES)
    if get(config, "data.bad_files") == "skip" and source not in IMAGE_FOLDERS:
        check.fail(
            "data.bad_files",
            f"'error' for data.source={source!r} (skip leaves out image files of "
            f"{' and '.join(IMAGE_FOLDERS)}; table rows: data.non_finite)",
            "skip",
        )


def check_data(check: Checker, config) -> None:
    source = get(config, "data.source")
    if source is MISSING:
        return
    check.one_of("data.source", SOURCES)
    _check_bad_files(check, config, source)
    if source == "segmentation_synthetic":
        _check_synthetic(check, config)
        _check_images(check, config)
        return
    check.integer("data.num_features", 0)
    check.integer("data.shuffle_buffer", 0)
    check.one_of("data.non_finite", NON_FINITE)
    if source == "synthetic":
        _check_synthetic(check, config)
    elif source in SOURCES:
        if not get(config, "data.path"):
            check.errors.append(f"data.path is required for data.source={source!r}")
        elif source in FILE_SOURCES:
            _check_files(check, config, source)
        else:
            _check_images(check, config)
