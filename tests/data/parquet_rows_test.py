"""Parquet files read one row group and one page at a time (data/readers/parquet_rows.py),
as a user meets it: only the row groups that hold a pipeline's chunks, memory far below
a large row group, nulls named, files behind a URL, and what to install without pyarrow."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from focal_dist import data
from focal_dist.distribute import InputInfo
from tests.data.parquet_test import mixed_table
from tests.training import runs


@pytest.fixture
def reads(monkeypatch):
    """Each `iter_batches` call's keyword arguments (columns, row_groups), as made."""
    calls, iter_batches = [], pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return iter_batches(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    return calls


@pytest.fixture
def groups_file(tmp_path):
    """1200 rows in 4 row groups of 300."""
    path = str(tmp_path / "groups.parquet")
    pq.write_table(mixed_table(1200, seed=0), path, row_group_size=300)
    return path


def test_a_pipeline_reads_only_the_row_groups_and_columns_it_needs(groups_file, reads):
    # Chunks of 300 rows, one per row group: pipeline 1 of 2 owns row groups 1 and 3.
    info = InputInfo(1, 2, 64)
    dataset = data.make_dataset("parquet", groups_file, info, chunk_rows=300, labels_only=True)
    labels = np.concatenate(list(dataset.as_numpy_iterator()))
    expected = pq.read_table(groups_file)["label"].to_numpy()
    np.testing.assert_array_equal(labels, np.concatenate([expected[300:600], expected[900:]]))
    assert [(call["row_groups"], call["columns"]) for call in reads] == [
        ([1], ["label"]),
        ([3], ["label"]),
    ]
    reads.clear()  # training's label pass reads and checks every feature as well
    options = {"chunk_rows": 300, "labels_only": True, "check_features": True}
    list(data.make_dataset("parquet", groups_file, info, **options))
    assert {tuple(call["columns"]) for call in reads} == {("label", "id", "a", "b", "c")}


def test_a_file_far_larger_than_a_chunk_is_never_held_whole(tmp_path):
    # One row group of 72 MB (the worst case): pyarrow's peak allocation, measured in a
    # fresh process, stays a few pages per column (about 3 MB each here), far below it.
    path = tmp_path / "large.parquet"
    rows = 3_000_000
    columns = {f"f{k}": np.random.default_rng(k).normal(size=rows) for k in range(2)}
    columns["label"] = np.arange(rows) % 2
    pq.write_table(pa.table(columns), path, row_group_size=rows)
    assert pq.ParquetFile(path).metadata.num_row_groups == 1
    script = textwrap.dedent(
        f"""
        import json
        import pyarrow as pa
        from focal_dist import data
        from focal_dist.distribute import InputInfo
        dataset = data.make_dataset("parquet", {str(path)!r}, InputInfo(0, 1, 64))
        rows = sum(len(y) for _, y in dataset)
        print(json.dumps({{"rows": rows, "peak": pa.default_memory_pool().max_memory()}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=runs.env(), capture_output=True, text=True, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["rows"] == rows
    whole = rows * 3 * 8
    assert report["peak"] < whole / 5, report


def test_nulls_read_as_nan_features_and_are_refused_as_integer_labels(tmp_path):
    path = str(tmp_path / "nulls.parquet")
    feature = pa.array([0.5, None, 1.5, 2.0], pa.float64())
    pq.write_table(pa.table({"x": feature, "label": pa.array([0, 1, 0, 1])}), path)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"column x, row 1: .* got nan"):
        list(data.make_dataset("parquet", path, InputInfo(0, 1, 4)))
    label = pa.array([0, 1, None, 1], pa.int64())
    pq.write_table(pa.table({"x": [0.5, 1.0, 1.5, 2.0], "label": label}), path)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=rf"Parquet file {path}, column label, row 2: labels of an integer column "
        r"\(int64\) must not be null",
    ):
        list(data.make_dataset("parquet", path, InputInfo(0, 1, 4), labels_only=True))


def test_files_behind_a_url_are_read_through_tensorflow_file_systems(groups_file):
    url = "ram://parquet_rows_test/groups.parquet"
    tf.io.gfile.makedirs("ram://parquet_rows_test")
    tf.io.gfile.copy(groups_file, url, overwrite=True)
    dataset = data.make_dataset("parquet", url, InputInfo(0, 1, 64), chunk_rows=128)
    labels = np.concatenate([y for _, y in dataset.as_numpy_iterator()])
    np.testing.assert_array_equal(labels, pq.read_table(groups_file)["label"].to_numpy())


def test_without_pyarrow_the_error_says_how_to_install_it(groups_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import fails
    with pytest.raises(data.DataError, match=r"pip install 'focal-dist\[parquet\]'"):
        data.make_dataset("parquet", groups_file, InputInfo(0, 1, 4))
