"""File readers: every row once across pipelines, and errors that name file and column."""

import numpy as np
import pytest
import tensorflow as tf

from focal_dist import data
from focal_dist.distribute import InputInfo
from tests.distribute import fixtures


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return fixtures.write_files(tmp_path_factory.mktemp("sources"))


COLUMNS = {"binary": "label", "multi_label": [f"y{c}" for c in range(5)], "sparse": "label"}


@pytest.mark.parametrize("mode", ["binary", "multi_label", "sparse"])
@pytest.mark.parametrize("num_pipelines", [1, 2, 3])
def test_pipelines_together_read_every_row_exactly_once(paths, mode, num_pipelines):
    source = data.source_from_path(paths[mode])
    rows = []
    for pipeline in range(num_pipelines):
        dataset = data.make_dataset(
            source,
            paths[mode],
            InputInfo(pipeline, num_pipelines, 100),
            label_column=COLUMNS[mode],
            batch_size=100,
        )
        for features, labels in dataset:
            rows.append(
                np.concatenate(
                    [features.numpy()[:, :1], labels.numpy().reshape(len(labels), -1)], axis=1
                )
            )
    rows = np.concatenate(rows)
    expected = np.concatenate(
        [fixtures.features()[:, :1], fixtures.labels(mode).reshape(fixtures.NUM_EXAMPLES, -1)],
        axis=1,
    )
    # Same multiset of (first feature, labels) rows: sort both.
    order = np.lexsort(rows.T[::-1])
    expected_order = np.lexsort(expected.T[::-1])
    np.testing.assert_allclose(rows[order], expected[expected_order], rtol=1e-5)


def test_features_are_every_other_column_in_file_order(paths):
    features, labels = next(
        iter(
            data.make_dataset(
                "csv",
                paths["multi_label"],
                InputInfo(0, 1, 8),
                label_column=COLUMNS["multi_label"],
                batch_size=8,
            )
        )
    )
    np.testing.assert_allclose(features.numpy(), fixtures.features()[:8], rtol=1e-5)
    np.testing.assert_array_equal(labels.numpy(), fixtures.labels("multi_label")[:8])


def test_missing_file_empty_file_and_unknown_extension(tmp_path):
    with pytest.raises(data.DataError, match=r"no such file"):
        data.list_files(str(tmp_path / "nope-*.csv"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(data.DataError, match=r"empty\.csv.*empty"):
        data.list_files(str(tmp_path / "empty.csv"))
    with pytest.raises(data.DataError, match=r"cannot tell the format.*\.bin"):
        data.source_from_path("x.bin")


@pytest.mark.parametrize(
    ("mode", "column", "match"),
    [
        ("binary", "target", r"binary-0\.tfrecord.*no feature 'target'.*\['features', 'label'\]"),
        ("multi_label", "target", r"multi-0\.csv.*no column \['target'\]"),
        ("sparse", "target", r"sparse-0\.parquet.*no column \['target'\]"),
    ],
)
def test_missing_column_names_the_file_and_the_column(paths, mode, column, match):
    with pytest.raises(data.DataError, match=match):
        data.make_dataset(
            data.source_from_path(paths[mode]),
            paths[mode],
            InputInfo(0, 1, 8),
            label_column=column,
            batch_size=8,
        )


def test_non_numeric_csv_value_names_file_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,label,b\n1.0,0,2\n3.5,1,oops\n")
    dataset = data.make_dataset("csv", str(path), InputInfo(0, 1, 8), batch_size=8)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"bad\.csv, column b, row 1 \(line 3\): values must be numbers, got oops",
    ):
        list(dataset)
