"""Bad values in real CSV, Parquet and TFRecord files stop the reader naming file, column
and row; empty shards and header-only files name the file; the feature count comes
from the files."""

import csv

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from focal_dist import data
from focal_dist.distribute import InputInfo

ROWS = 50
NAMES = ["f0", "f1", "f2", "f3"]


def _table(bad_row=None, bad_column=None, bad_value=np.nan, labels=None):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(ROWS, len(NAMES))).astype(np.float32)
    if bad_row is not None:
        features[bad_row, NAMES.index(bad_column)] = bad_value
    labels = (np.arange(ROWS) % 5 == 0).astype(np.int64) if labels is None else labels
    return features, labels


def write_csv(path, features, labels, text=None):
    """Columns f0, f1, label, f2, f3; `text` = {(row, column): raw text} overrides cells."""
    with open(path, "w") as handle:
        handle.write("f0,f1,label,f2,f3\n")
        for r in range(len(labels)):
            cells = {name: f"{features[r, k]:.9g}" for k, name in enumerate(NAMES)}
            cells["label"] = str(labels[r])
            for (row, column), value in (text or {}).items():
                if row == r:
                    cells[column] = value
            handle.write(",".join(cells[c] for c in ["f0", "f1", "label", "f2", "f3"]) + "\n")
    return str(path)


def write_parquet(path, features, labels):
    columns = {name: features[:, k] for k, name in enumerate(NAMES)}
    pq.write_table(pa.table({**columns, "label": labels}), path, row_group_size=16)
    return str(path)


def write_tfrecord(path, features, labels):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row, label in zip(features, labels, strict=True):
            feature = {
                "features": tf.train.Feature(float_list=tf.train.FloatList(value=row)),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())
    return str(path)


def read_all(source, path, info=None, **options):
    dataset = data.make_dataset(source, path, info or InputInfo(0, 1, 16), batch_size=16, **options)
    return list(dataset)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("num_pipelines", [1, 2])
def test_csv_non_finite_feature_names_file_column_and_row(tmp_path, value, num_pipelines):
    features, labels = _table(bad_row=37, bad_column="f2", bad_value=value)
    path = write_csv(tmp_path / "train.csv", features, labels)
    # Every pipeline that holds row 37 stops on it; with 2 pipelines that is pipeline 1.
    info = InputInfo(37 % num_pipelines, num_pipelines, 16)
    expected = (
        rf"CSV file {tmp_path}/train\.csv, column f2, row 37 \(line 39\): "
        rf"feature values must be finite.*got {value}"
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        read_all("csv", path, info)
    # The label pass before training checks the features too.
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        read_all("csv", path, info, labels_only=True, check_features=True)
    # The other pipeline never holds row 37: its rows are all fine.
    if num_pipelines == 2:
        assert sum(len(y) for _, y in read_all("csv", path, InputInfo(0, 2, 16))) == ROWS // 2


def test_csv_text_nan_in_any_case_is_refused(tmp_path):
    features, labels = _table()
    path = write_csv(tmp_path / "t.csv", features, labels, text={(4, "f0"): "NaN"})
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"column f0, row 4 \(line 6\)"):
        read_all("csv", path)


def test_an_empty_csv_field_is_named_as_such(tmp_path):
    features, labels = _table()
    path = write_csv(tmp_path / "e.csv", features, labels, text={(12, "f3"): ""})
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"column f3, row 12 \(line 14\): values must be numbers, got an empty field",
    ):
        read_all("csv", path)


def test_parquet_non_finite_feature_names_file_column_and_row(tmp_path):
    good, labels = _table()
    bad, _ = _table(bad_row=41, bad_column="f3", bad_value=np.inf)
    paths = [write_parquet(tmp_path / "a.parquet", good, labels)]
    paths.append(write_parquet(tmp_path / "b.parquet", bad, labels))
    # Chunks of 8 rows: row 41 is in the 6th chunk of the second file.
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=rf"Parquet file {tmp_path}/b\.parquet, column f3, row 41: feature values must "
        r"be finite.*got inf",
    ):
        read_all("parquet", ",".join(paths), chunk_rows=8)
    assert sum(len(y) for _, y in read_all("parquet", paths[0], chunk_rows=8)) == ROWS


@pytest.mark.parametrize(("pipeline_id", "num_pipelines"), [(0, 1), (1, 2), (0, 3)])
def test_tfrecord_non_finite_feature_names_file_key_index_and_record(
    tmp_path, pipeline_id, num_pipelines
):
    good, labels = _table()
    bad, _ = _table(bad_row=24, bad_column="f1", bad_value=-np.inf)
    paths = [write_tfrecord(tmp_path / "a.tfrecord", good, labels)]
    paths.append(write_tfrecord(tmp_path / "b.tfrecord", bad, labels))
    # 3 pipelines > 2 files: records are split, record 24 is pipeline 0's (24 % 3).
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=rf"TFRecord file {tmp_path}/b\.tfrecord, feature features\[1\], record 24: "
        r"feature values must be finite.*got -inf",
    ):
        read_all("tfrecord", ",".join(paths), InputInfo(pipeline_id, num_pipelines, 16))


@pytest.mark.parametrize("source", ["csv", "parquet", "tfrecord"])
def test_label_outside_the_task_range_names_file_and_column(tmp_path, source):
    features, labels = _table()
    labels[13] = 2
    write = {"csv": write_csv, "parquet": write_parquet, "tfrecord": write_tfrecord}[source]
    path = write(tmp_path / f"y.{source}", features, labels)
    expected = (
        rf"{path}, (column|feature) label, (row|record) 13.*: binary labels must be 0 or 1, "
        r"got 2"
    )
    for labels_only in (True, False):
        with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
            read_all(source, path, labels_only=labels_only, label_mode="binary", num_classes=1)
    # Without a label mode the value 2 is a valid (finite) label.
    assert len(read_all(source, path)) == -(-ROWS // 16)


def test_sparse_labels_must_be_integer_class_ids(tmp_path):
    features, _ = _table()
    labels = np.arange(ROWS) % 3
    path = write_csv(tmp_path / "s.csv", features, labels, text={(9, "label"): "1.5"})
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"column label, row 9 \(line 11\): class labels must be integers in \[0, 3\), "
        r"got 1.5",
    ):
        read_all("csv", path, label_mode="sparse", num_classes=3)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"in \[0, 2\), got 2"):
        read_all("csv", path, label_mode="sparse", num_classes=2)


def test_nan_label_is_refused_naming_the_row(tmp_path):
    features, labels = _table()
    path = write_csv(tmp_path / "n.csv", features, labels, text={(3, "label"): "nan"})
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"n\.csv, column label, row 3 \(line 5\).*got nan"
    ):
        read_all("csv", path, labels_only=True)


def test_multi_label_width_must_match_the_classes(tmp_path):
    features, labels = _table()
    path = write_csv(tmp_path / "m.csv", features, labels)
    with pytest.raises(data.DataError, match=r"m\.csv.*label has 1 value.*multi_label.*need 3"):
        read_all("csv", path, label_mode="multi_label", num_classes=3)


def test_header_only_csv_and_empty_tfrecord_name_the_file(tmp_path):
    features, labels = _table()
    full = write_csv(tmp_path / "full.csv", features, labels)
    (tmp_path / "header.csv").write_text("f0,f1,label,f2,f3\n\n")
    with pytest.raises(data.DataError, match=r"header\.csv' has a header but no data rows"):
        read_all("csv", f"{full},{tmp_path / 'header.csv'}")
    empty = write_tfrecord(tmp_path / "none.tfrecord", features[:0], labels[:0])
    with pytest.raises(data.DataError, match=r"none\.tfrecord' is empty"):
        read_all("tfrecord", empty)


@pytest.mark.parametrize("source", ["csv", "tfrecord", "parquet"])
def test_a_pipeline_left_without_rows_names_the_files(tmp_path, source):
    features, labels = _table()
    write = {"csv": write_csv, "parquet": write_parquet, "tfrecord": write_tfrecord}[source]
    path = write(tmp_path / f"two.{source}", features[:2], labels[:2])
    with pytest.raises(
        data.DataError, match=rf"two\.{source}'\] hold.*than the 3 input pipelines: pipeline 2"
    ):
        read_all(source, path, InputInfo(2, 3, 16))
    # Parquet splits its chunks so that 2 pipelines each get one of the 2 rows.
    for pipeline in range(2):
        assert sum(len(y) for _, y in read_all(source, path, InputInfo(pipeline, 2, 16))) == 1


def test_feature_count_comes_from_the_csv_header_and_the_parquet_schema(tmp_path):
    features, labels = _table()
    csv_path = write_csv(tmp_path / "c.csv", features, labels)
    parquet_path = write_parquet(tmp_path / "p.parquet", features, labels)
    tfrecord_path = write_tfrecord(tmp_path / "t.tfrecord", features, labels)
    for source, path in [("csv", csv_path), ("parquet", parquet_path)]:
        assert data.resolve_num_features(source, path, 0) == 4
        assert data.resolve_num_features(source, path, 4) == 4
        with pytest.raises(data.DataError, match=r"num_features is 32 but .* has 4 feature"):
            data.resolve_num_features(source, path, 32)
    assert data.resolve_num_features("tfrecord", tfrecord_path, None) == 4
    with pytest.raises(data.DataError, match=r"is 3 but .* has 4 values in feature 'features'"):
        data.resolve_num_features("tfrecord", tfrecord_path, 3)


def test_field_counts_match_pythons_csv_module_on_random_rows(tmp_path):
    """The NumPy check finds the same first bad line as Python's csv module, across block
    boundaries (a small block), blank and CRLF lines, and quoted fields with commas."""
    from focal_dist.data.files import DataError
    from focal_dist.data.readers import csv_fields

    rng = np.random.default_rng(0)
    for trial in range(40):
        lines = ["a,b,c"]
        for _ in range(int(rng.integers(5, 60))):
            kind = rng.random()
            if kind < 0.05:
                lines.append("")
            elif kind < 0.1 and trial % 2:
                lines.append('"x, y",1,2')
            else:
                lines.append(
                    ",".join(["1"] * (3 if rng.random() > 0.03 else int(rng.integers(1, 6))))
                )
        ending = "\r\n" if trial % 3 == 0 else "\n"
        path = tmp_path / f"t{trial}.csv"
        path.write_text(ending.join(lines) + ending)
        expected = None
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            for row in reader:
                if row and len(row) != 3:
                    expected = (reader.line_num, len(row))
                    break
        csv_fields._check.cache_clear()
        original = csv_fields._BLOCK
        csv_fields._BLOCK = 7  # lines cross block boundaries
        try:
            if expected is None:
                csv_fields.check_field_counts(str(path))
            else:
                with pytest.raises(DataError, match=f"line {expected[0]} has {expected[1]} fields"):
                    csv_fields.check_field_counts(str(path))
        finally:
            csv_fields._BLOCK = original
