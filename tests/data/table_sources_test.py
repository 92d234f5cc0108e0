"""The table sources (CSV, Parquet, TFRecord) through `Source`: every split and the label
pass against the data the files were written from, and prediction rows of uneven files
against a plain read (csv module, pyarrow, tf.train.Example), each row exactly once."""

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from focal_dist import data
from focal_dist.distribute import InputInfo
from tests.data.sources_registry_test import config_data
from tests.distribute import fixtures

# mode -> (source, label_column, num_classes, feature columns written from fixtures.features())
LAYOUT = {
    "binary": ("tfrecord", "label", 1, [0, 1, 2]),
    "multi_label": ("csv", ",".join(f"y{c}" for c in range(5)), 5, [0, 1, 2]),
    "sparse": ("parquet", "label", fixtures.NUM_SPARSE, [0, 1]),
}
HALVES = [slice(0, 6000), slice(6000, fixtures.NUM_EXAMPLES)]  # the fixture's two files


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return fixtures.write_files(tmp_path_factory.mktemp("tables"))


def _source(paths, mode, **fields):
    name, column, num_classes, _ = LAYOUT[mode]
    config = config_data(source=name, path=paths[mode], label_column=column, num_features=0)
    for field, value in fields.items():
        config[field] = value
    label_mode = "sparse" if mode == "sparse" else mode
    return data.get_source(config, label_mode=label_mode, num_classes=num_classes)


ALL = slice(None)


def _rows(mode, part=ALL):
    """[N, F + C] the rows as written: features then labels, in file order."""
    features = fixtures.features()[part][:, LAYOUT[mode][3]]
    labels = fixtures.labels(mode)[part].reshape(len(features), -1)
    return np.concatenate([features, labels], axis=1)


def _as_rows(pairs):
    return np.concatenate(
        [np.concatenate([x, y[:, None] if y.ndim == 1 else y], axis=1) for x, y in pairs]
    )


def _sorted(rows):
    return rows[np.lexsort(rows.T[::-1])]


@pytest.mark.parametrize("mode", list(LAYOUT))
@pytest.mark.parametrize("num_pipelines", [1, 3])  # 3 > 2 files: records split
def test_training_streams_hold_every_row_once_an_epoch_and_resume_exactly(
    paths, mode, num_pipelines
):
    source = _source(paths, mode, shuffle_buffer=300)
    assert source.input_shape == (len(LAYOUT[mode][3]),)
    epoch = []
    for p in range(num_pipelines):
        info = InputInfo(p, num_pipelines, 256, 1, 256 * num_pipelines, seed=3)
        shard_size = sum(len(y) for y in source.label_batches(info))
        stream = [
            (x.numpy(), y.numpy())
            for x, y in source.train_batches(info).take(-(-shard_size // 256) + 6)
        ]
        assert all(len(y) == 256 for _, y in stream)
        epoch.append(_as_rows(stream)[:shard_size])
        resumed = source.train_batches(
            InputInfo(p, num_pipelines, 256, 1, 256 * num_pipelines, seed=3, skip_global_batches=4)
        )
        for (x, y), (x_resumed, y_resumed) in zip(
            stream[4:], resumed.take(len(stream) - 4), strict=True
        ):
            np.testing.assert_array_equal(x_resumed, x)
            np.testing.assert_array_equal(y_resumed, y)
    np.testing.assert_allclose(_sorted(np.concatenate(epoch)), _sorted(_rows(mode)), rtol=1e-6)


@pytest.mark.parametrize("mode", list(LAYOUT))
def test_held_out_splits_give_each_row_once_in_the_same_order_under_any_split(paths, mode):
    first, second = paths[mode].replace("*", "0"), paths[mode].replace("*", "1")
    source = _source(paths, mode, eval_path=second, calibration_path=first)
    assert _source(paths, mode).split_batches(InputInfo(0, 1, 8, 1, 8), "calibration") is None
    for split, part in [("eval", HALVES[1]), ("calibration", HALVES[0])]:
        orders = []
        for num_pipelines, replicas in [(1, 1), (3, 2)]:
            global_batch = 100 * num_pipelines * replicas
            per_pipeline = [
                [
                    (x.numpy(), y.numpy())
                    for x, y in source.split_batches(
                        InputInfo(p, num_pipelines, 100, replicas, global_batch), split
                    )
                ]
                for p in range(num_pipelines)
            ]
            assert len({len(b) for b in per_pipeline}) == 1  # the same steps everywhere
            # Global step s: pipeline by pipeline, replica by replica.
            steps = len(per_pipeline[0]) // replicas
            orders.append(
                _as_rows(
                    [
                        b[s * replicas + r]
                        for s in range(steps)
                        for b in per_pipeline
                        for r in range(replicas)
                    ]
                )
            )
        np.testing.assert_array_equal(orders[1], orders[0])
        np.testing.assert_allclose(_sorted(orders[0]), _sorted(_rows(mode, part)), rtol=1e-6)


@pytest.mark.parametrize("mode", list(LAYOUT))
def test_label_batches_hold_every_training_label_once(paths, mode):
    source = _source(paths, mode)
    labels = [y.numpy() for p in range(3) for y in source.label_batches(InputInfo(p, 3, 100))]
    got = np.concatenate([y.reshape(len(y), -1) for y in labels])
    expected = fixtures.labels(mode).reshape(fixtures.NUM_EXAMPLES, -1)
    np.testing.assert_array_equal(_sorted(got), _sorted(expected))


# --- prediction rows ---------------------------------------------------------------------
UNEVEN = [7, 1, 12]  # rows per file


def _table(rows, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, 3)).astype(np.float32), (rng.random(rows) < 0.3).astype(np.int64)


def _write(kind, directory, counts, *, labels=True):
    directory.mkdir()
    for k, n in enumerate(counts):
        x, y = _table(n, seed=k)
        path = directory / f"part-{k}.{kind}"
        if kind == "csv":
            with open(path, "w") as handle:
                handle.write("a,label,b,c\n" if labels else "a,b,c\n")
                for row, label in zip(x, y, strict=True):
                    cells = [f"{row[0]:.9g}", str(label), *(f"{v:.9g}" for v in row[1:])]
                    handle.write(",".join(cells if labels else cells[:1] + cells[2:]) + "\n")
        elif kind == "parquet":
            columns = {"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]}
            pq.write_table(
                pa.table({**columns, **({"label": y} if labels else {})}), path, row_group_size=3
            )
        else:
            with tf.io.TFRecordWriter(str(path)) as writer:
                for row, label in zip(x, y, strict=True):
                    feature = {
                        "features": tf.train.Feature(float_list=tf.train.FloatList(value=row))
                    }
                    if labels:
                        feature["label"] = tf.train.Feature(
                            int64_list=tf.train.Int64List(value=[label])
                        )
                    writer.write(
                        tf.train.Example(
                            features=tf.train.Features(feature=feature)
                        ).SerializeToString()
                    )
    return str(directory / f"part-*.{kind}")


def _plain_read(kind, pattern):
    """{(file, row): features} read without focal_dist."""
    rows = {}
    for path in sorted(tf.io.gfile.glob(pattern)):
        if kind == "csv":
            with open(path) as handle:
                reader = csv.DictReader(handle)
                values = [[float(r[c]) for c in ("a", "b", "c")] for r in reader]
        elif kind == "parquet":
            table = pq.read_table(path)
            values = np.stack([table[c].to_numpy() for c in ("a", "b", "c")], axis=1)
        else:
            values = [
                tf.train.Example.FromString(r.numpy()).features.feature["features"].float_list.value
                for r in tf.data.TFRecordDataset(path)
            ]
        rows.update({(path, r): np.asarray(v, np.float32) for r, v in enumerate(values)})
    return rows


@pytest.mark.parametrize("kind", ["csv", "parquet", "tfrecord"])
@pytest.mark.parametrize("labels", [True, False])
@pytest.mark.parametrize("counts", [UNEVEN, [20]])
def test_prediction_rows_of_uneven_files_are_a_plain_read_each_row_once(
    tmp_path, kind, labels, counts
):
    pattern = _write(kind, tmp_path / "files", counts, labels=labels)
    source = data.get_source(
        config_data(source=kind, path=pattern, num_features=0), label_mode="binary", num_classes=1
    )
    expected = _plain_read(kind, pattern)
    for num_pipelines in (1, 2, 3):
        seen = {}
        for p in range(num_pipelines):
            for batch in source.prediction_batches(
                pattern, InputInfo(p, num_pipelines, 4), batch_size=4
            ):
                assert set(batch) == {"file", "row", "features"}
                assert batch["row"].dtype == tf.int64
                assert batch["features"].dtype == tf.float32
                for file, row, features in zip(
                    batch["file"].numpy(),
                    batch["row"].numpy(),
                    batch["features"].numpy(),
                    strict=True,
                ):
                    key = (file.decode(), int(row))
                    assert key not in seen, f"{key} twice with {num_pipelines} pipelines"
                    seen[key] = features
        assert sorted(seen) == sorted(expected)
        for key, features in expected.items():
            np.testing.assert_allclose(seen[key], features, rtol=1e-6)


@pytest.mark.parametrize("kind", ["csv", "parquet", "tfrecord"])
def test_a_nan_in_a_prediction_row_names_file_column_and_row(tmp_path, kind):
    pattern = _write(kind, tmp_path / "files", [5], labels=False)
    path = pattern.replace("*", "0")
    if kind == "csv":
        lines = Path(path).read_text().splitlines()
        lines[4] = "nan," + lines[4].split(",", 1)[1]
        Path(path).write_text("\n".join(lines) + "\n")
        where = rf"CSV file {path}, column a, row 3 \(line 5\)"
    elif kind == "parquet":
        x, _ = _table(5, seed=0)
        x[3, 0] = np.nan
        pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]}), path)
        where = rf"Parquet file {path}, column a, row 3"
    else:
        x, _ = _table(5, seed=0)
        x[3, 0] = np.nan
        with tf.io.TFRecordWriter(path) as writer:
            for row in x:
                feature = {"features": tf.train.Feature(float_list=tf.train.FloatList(value=row))}
                writer.write(
                    tf.train.Example(
                        features=tf.train.Features(feature=feature)
                    ).SerializeToString()
                )
        where = rf"TFRecord file {path}, feature features\[0\], record 3"
    source = data.get_source(
        config_data(source=kind, path=pattern, num_features=0), label_mode="binary", num_classes=1
    )
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=where + r": feature values must be finite.*got nan"
    ):
        list(source.prediction_batches(pattern, InputInfo(0, 1, 4), batch_size=4))
