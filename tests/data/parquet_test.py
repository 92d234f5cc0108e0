"""Parquet files as a user writes them (several row groups, a chunk size that divides
neither them nor the files), read by 1, 2 and 3 input pipelines: every row once, in the
pipeline's chunks, against pyarrow's own read of the files; a NaN named by file, column
and row; columns that cannot be read named; two workers (Horovod, multi-worker) counting
every label once. How the rows are read: parquet_rows_test.py."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from focal_dist import data
from focal_dist.distribute import InputInfo
from tests.training import runs

SIZES = [1000, 457]  # rows per file
ROW_GROUPS = [300, 100]  # rows per row group, per file
CHUNK = 128  # divides neither


def mixed_table(rows: int, seed: int) -> pa.Table:
    """Columns of several types, the label between features: id (the row's identity),
    a (int32), label (int64, 7 classes), b (float64), c (float32)."""
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "id": np.arange(rows, dtype=np.float64) + 10_000 * seed,
            "a": rng.integers(-5, 5, rows).astype(np.int32),
            "label": rng.integers(0, 7, rows),
            "b": rng.normal(size=rows),
            "c": rng.normal(size=rows).astype(np.float32),
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("row_groups")
    paths = []
    for k, (rows, group) in enumerate(zip(SIZES, ROW_GROUPS, strict=True)):
        path = str(directory / f"part-{k}.parquet")
        pq.write_table(mixed_table(rows, seed=k), path, row_group_size=group)
        assert pq.ParquetFile(path).metadata.num_row_groups == -(-rows // group)
        paths.append(path)
    return paths


def _reference(paths):
    """(features [N, 4] float32, labels [N]) of every row, in file order, by pyarrow."""
    table = pa.concat_tables([pq.read_table(p) for p in paths])
    features = np.stack([table[c].to_numpy() for c in ("id", "a", "b", "c")], axis=1)
    return features.astype(np.float32), table["label"].to_numpy()


def _read(paths, pipeline, num_pipelines, **options):
    info = InputInfo(pipeline, num_pipelines, 64)
    dataset = data.make_dataset(
        "parquet", ",".join(paths), info, batch_size=100, chunk_rows=CHUNK, **options
    )
    return list(dataset.as_numpy_iterator())


def _own_rows(pipeline, num_pipelines):
    """Indices into the rows of all files of pipeline's chunks i, i + P, ... in order."""
    chunks, offset = [], 0
    for rows in SIZES:
        chunks += [range(offset + s, offset + min(s + CHUNK, rows)) for s in range(0, rows, CHUNK)]
        offset += rows
    return [row for chunk in chunks[pipeline::num_pipelines] for row in chunk]


@pytest.mark.parametrize("num_pipelines", [1, 2, 3])
def test_each_row_is_read_once_over_the_pipelines_as_pyarrow_reads_it(files, num_pipelines):
    features, labels = _reference(files)
    seen = []
    for p in range(num_pipelines):
        batches = _read(files, p, num_pipelines)
        x = np.concatenate([x for x, _ in batches])
        y = np.concatenate([y for _, y in batches])
        assert all(len(y) == 100 for _, y in batches[:-1])  # batches span chunks and files
        own = _own_rows(p, num_pipelines)  # the chunks of this pipeline, in order
        np.testing.assert_array_equal(x, features[own])
        np.testing.assert_array_equal(y, labels[own])
        assert y.dtype == np.int64
        assert x.dtype == np.float32
        again = _read(files, p, num_pipelines)
        np.testing.assert_array_equal(np.concatenate([x for x, _ in again]), x)  # same order
        seen.append(x[:, 0])
    ids = np.concatenate(seen)
    assert len(ids) == len(np.unique(ids)) == sum(SIZES)
    np.testing.assert_array_equal(np.sort(ids), np.sort(features[:, 0]))


@pytest.mark.parametrize("num_pipelines", [1, 3])
def test_prediction_rows_are_counted_from_zero_in_each_file(files, num_pipelines):
    features, _ = _reference(files)
    offsets = {files[0]: 0, files[1]: SIZES[0]}
    rows = 0
    for p in range(num_pipelines):
        for batch in _read(files, p, num_pipelines, prediction_rows=True):
            index = [
                offsets[f.decode()] + r for f, r in zip(batch["file"], batch["row"], strict=True)
            ]
            np.testing.assert_array_equal(batch["features"], features[index])
            rows += len(index)
    assert rows == sum(SIZES)


@pytest.mark.parametrize("num_pipelines", [1, 2, 3])
def test_a_nan_is_named_by_file_column_and_row_by_the_pipeline_that_reads_it(
    files, tmp_path, num_pipelines
):
    table = mixed_table(SIZES[1], seed=1)
    b = table["b"].to_numpy().copy()
    b[301] = np.nan  # in row group 3 (rows 300-399) and chunk 10 (file 1's rows 256-383)
    path = str(tmp_path / "part-1.parquet")
    pq.write_table(table.set_column(3, "b", pa.array(b)), path, row_group_size=100)
    owner = 10 % num_pipelines
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=rf"Parquet file {path}, column b, row 301: feature values must be finite.*got nan",
    ):
        _read([files[0], path], owner, num_pipelines)
    for p in set(range(num_pipelines)) - {owner}:
        _read([files[0], path], p, num_pipelines)


def test_columns_that_cannot_be_read_are_named_with_what_was_expected(files, tmp_path):
    text = str(tmp_path / "text.parquet")
    pq.write_table(mixed_table(10, seed=0).append_column("name", pa.array(["x"] * 10)), text)
    with pytest.raises(data.DataError, match=r"text\.parquet': column 'name' is string, not num"):
        data.make_dataset("parquet", text, InputInfo(0, 1, 4))
    # The label pass reads no feature column, so it does not stop there.
    assert len(list(data.make_dataset("parquet", text, InputInfo(0, 1, 4), labels_only=True)))
    with pytest.raises(data.DataError, match=r"part-0\.parquet' has no column \['target'\]"):
        data.make_dataset("parquet", files[0], InputInfo(0, 1, 4), label_column="target")
    empty = str(tmp_path / "empty.parquet")
    pq.write_table(mixed_table(0, seed=0), empty)
    with pytest.raises(data.DataError, match=r"empty\.parquet' has no rows"):
        data.make_dataset("parquet", empty, InputInfo(0, 1, 4))
    not_parquet = tmp_path / "notes.parquet"
    not_parquet.write_text("label,x\n1,2\n")
    with pytest.raises(data.DataError, match=r"notes\.parquet' cannot be read as Parquet"):
        data.make_dataset("parquet", str(not_parquet), InputInfo(0, 1, 4))


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["horovod_gloo", "multiworker"])
def test_two_workers_count_every_parquet_label_once(launcher, tmp_path):
    # One file of one chunk: chunks are halved until both workers have one (2048 rows),
    # and the second starts inside the row group of rows 2000-2399 that both decode.
    path = str(tmp_path / "labels.parquet")
    pq.write_table(mixed_table(2501, seed=3), path, row_group_size=400)
    output = tmp_path / "weights.json"
    cli = [
        "-m",
        "focal_dist.histogram",
        f"--data={path}",
        "--num_classes=7",
        "--label_mode=sparse",
        f"--output={output}",
        "--batch_size=50",
    ]
    runs.run(runs.distributed_command(launcher, cli), timeout=300)
    report = json.loads(output.read_text())
    expected = np.bincount(pq.read_table(path)["label"].to_numpy(), minlength=7)
    assert report["counts"] == expected.tolist()
    assert report["num_examples"] == 2501
