"""data.non_finite = "skip": rows with a NaN or inf feature or an invalid label are
dropped by every pass (training, held-out splits, the label histogram, a resumed run)
and counted per file and column, against a NumPy count, over 1 to 3 pipelines."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from focal_dist import data
from focal_dist.distribute import InputInfo, get_backend
from tests.data.checks_test import write_csv, write_tfrecord
from tests.data.sources_registry_test import config_data

NAMES = ["f0", "f1", "f2", "f3"]
SIZES = [37, 50]  # two files of uneven size
# (file, row, column, value): bad values spread over every pipeline's rows and records.
BAD = [
    (0, 0, "f2", np.nan),
    (0, 7, "f0", np.inf),
    (0, 8, "label", 2),
    (0, 20, "f3", -np.inf),
    (0, 20, "label", 3),  # two bad values, one row
    (0, 36, "f1", np.nan),
    (1, 1, "label", -1),
    (1, 2, "f0", np.nan),
    (1, 2, "f1", np.nan),
    (1, 33, "f3", np.inf),
    (1, 49, "label", 5),
]


def _tables():
    """[(features [N, 4] float32, labels [N] int64)] per file, with BAD written in."""
    tables = []
    for k, size in enumerate(SIZES):
        rng = np.random.default_rng(k)
        tables.append([rng.normal(size=(size, 4)).astype(np.float32), rng.integers(0, 2, size)])
    for file, row, column, value in BAD:
        if column == "label":
            tables[file][1][row] = value
        else:
            tables[file][0][row, NAMES.index(column)] = value
    return tables


def _write_parquet(path, features, labels):
    columns = {name: features[:, k] for k, name in enumerate(NAMES)}
    pq.write_table(pa.table({**columns, "label": labels}), path, row_group_size=8)
    return str(path)


WRITE = {"csv": write_csv, "parquet": _write_parquet, "tfrecord": write_tfrecord}


@pytest.fixture(scope="module", params=["csv", "parquet", "tfrecord"])
def files(request, tmp_path_factory):
    kind = request.param
    directory = tmp_path_factory.mktemp(f"dirty_{kind}")
    paths = [
        WRITE[kind](directory / f"part-{k}.{kind}", x, y) for k, (x, y) in enumerate(_tables())
    ]
    return kind, paths


def _source(kind, paths, **fields):
    config = config_data(source=kind, path=",".join(paths), num_features=0, non_finite="skip")
    for field, value in fields.items():
        config[field] = value
    return data.get_source(config, label_mode="binary", num_classes=1)


def _numpy_counts():
    """int64 [files, label + 4 features + rows]: bad values per column, rows dropped."""
    counts = []
    for features, labels in _tables():
        bad_label = ~np.isin(labels, [0, 1])
        bad_features = ~np.isfinite(features)
        dropped = bad_label | bad_features.any(axis=1)
        counts.append([bad_label.sum(), *bad_features.sum(axis=0), dropped.sum()])
    return np.asarray(counts, np.int64)


def _valid_rows(file=None):
    """[N, 5] the rows kept (features, label), file by file, in order."""
    kept = []
    for k, (features, labels) in enumerate(_tables()):
        valid = np.isin(labels, [0, 1]) & np.isfinite(features).all(axis=1)
        if file in (None, k):
            kept.append(np.concatenate([features[valid], labels[valid, None]], axis=1))
    return np.concatenate(kept)


def _sorted(rows):
    return rows[np.lexsort(rows.T[::-1])]


def _as_rows(pairs):
    return np.concatenate([np.concatenate([x, y.reshape(len(x), -1)], axis=1) for x, y in pairs])


@pytest.mark.parametrize("num_pipelines", [1, 2, 3])
def test_skipped_rows_summed_over_pipelines_are_the_numpy_count_per_file_and_column(
    files, num_pipelines
):
    kind, paths = files
    source = _source(kind, paths)
    shards = [source.skipped_rows(InputInfo(p, num_pipelines, 16)) for p in range(num_pipelines)]
    assert all(shard.files == tuple(paths) for shard in shards)
    label, features = (
        ("label", NAMES) if kind != "tfrecord" else ("label", [f"features[{i}]" for i in range(4)])
    )
    assert shards[0].columns == (label, *features)
    total = sum(shard.counts for shard in shards)
    np.testing.assert_array_equal(total, _numpy_counts())
    # Several pipelines hold bad rows: the count is split, not repeated.
    if num_pipelines > 1:
        assert sum(shard.num_rows > 0 for shard in shards) > 1


@pytest.mark.parametrize("num_pipelines", [1, 2, 3])
def test_training_labels_and_resumed_runs_drop_exactly_the_bad_rows(files, num_pipelines):
    kind, paths = files
    source = _source(kind, paths, shuffle_buffer=16)
    epoch, labels = [], []
    for p in range(num_pipelines):
        info = InputInfo(p, num_pipelines, 8, 1, 8 * num_pipelines, seed=2)
        shard_labels = [y.numpy() for y in source.label_batches(info)]
        labels += shard_labels
        shard_size = sum(len(y) for y in shard_labels)
        stream = [
            (x.numpy(), y.numpy())
            for x, y in source.train_batches(info).take(-(-shard_size // 8) + 3)
        ]
        epoch.append(_as_rows(stream)[:shard_size])
        resumed = source.train_batches(
            InputInfo(p, num_pipelines, 8, 1, 8 * num_pipelines, seed=2, skip_global_batches=3)
        )
        for (x, y), (x_resumed, y_resumed) in zip(
            stream[3:], resumed.take(len(stream) - 3), strict=True
        ):
            np.testing.assert_array_equal(x_resumed, x)
            np.testing.assert_array_equal(y_resumed, y)
    kept = _valid_rows()
    np.testing.assert_array_equal(np.sort(np.concatenate(labels)), np.sort(kept[:, -1]))
    np.testing.assert_allclose(_sorted(np.concatenate(epoch)), _sorted(kept), rtol=1e-6)


def test_held_out_splits_drop_the_bad_rows_and_keep_the_order(files):
    kind, paths = files
    source = _source(kind, paths, eval_path=paths[1], calibration_path=paths[0])
    for split, file in [("eval", 1), ("calibration", 0)]:
        got = _as_rows(source.split_batches(InputInfo(0, 1, 8, 1, 8), split).as_numpy_iterator())
        np.testing.assert_allclose(got, _valid_rows(file), rtol=1e-6)
    assert source.skipped_rows(InputInfo(0, 1, 8), "eval").num_rows == _numpy_counts()[1, -1]


def test_counts_sum_over_workers_and_report_only_what_was_dropped(files):
    kind, paths = files
    skipped = _source(kind, paths).skipped_rows(InputInfo(0, 1, 16))
    summed = skipped.summed(get_backend("default").sum_across_workers)
    np.testing.assert_array_equal(summed.counts, skipped.counts)
    report = summed.to_dict()
    assert report["rows"] == _numpy_counts()[:, -1].sum() == 9
    assert report["files"][paths[1]]["rows"] == 4
    first_feature = "f0" if kind != "tfrecord" else "features[0]"
    assert report["files"][paths[1]]["columns"] == {
        "label": 2,
        first_feature: 1,
        ("f1" if kind != "tfrecord" else "features[1]"): 1,
        ("f3" if kind != "tfrecord" else "features[3]"): 1,
    }


def test_error_is_still_the_default_and_text_that_is_no_number_still_stops_a_skip(tmp_path):
    features, labels = _tables()[0]
    dirty = write_csv(tmp_path / "dirty.csv", features, labels)
    config = config_data(source="csv", path=dirty, num_features=0)
    default = data.get_source(config, label_mode="binary", num_classes=1)
    assert default.skipped_rows(InputInfo(0, 1, 8)) is None
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"column label, row 8 .*must be 0 or 1"
    ):
        list(default.label_batches(InputInfo(0, 1, 8)))
    path = write_csv(tmp_path / "t.csv", features, labels, text={(5, "f1"): "oops"})
    not_a_number = r"column f1, row 5 .*numbers, got oops"
    with pytest.raises(tf.errors.InvalidArgumentError, match=not_a_number):
        list(_source("csv", [path]).label_batches(InputInfo(0, 1, 8)))
    with pytest.raises(tf.errors.InvalidArgumentError, match=not_a_number):
        _source("csv", [path]).skipped_rows(InputInfo(0, 1, 8))
