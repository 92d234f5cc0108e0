"""The training CLI on real files: bad data stops the run naming file, column and row
before any checkpoint; the feature count is read from the CSV header and Parquet schema."""

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.data.checks_test import write_csv
from tests.training import runs

pytestmark = pytest.mark.slow

TINY = {
    "train.steps": 6,
    "train.global_batch_size": 32,
    "train.steps_per_loop": 3,
    "train.eval_every": 0,
    "train.checkpoint_every": 1,
    "data.shuffle_buffer": 64,
    "model.hidden_units": "(8,)",
}


def _wide(num_features: int, rows: int = 200):
    rng = np.random.default_rng(1)
    features = rng.normal(size=(rows, num_features)).astype(np.float32)
    labels = (features[:, 0] + 0.5 * rng.normal(size=rows) > 1.0).astype(np.int64)
    return features, labels


def _write_wide_csv(path, features, labels):
    names = [f"x{k}" for k in range(features.shape[1])]
    with open(path, "w") as handle:
        handle.write(",".join(["label", *names]) + "\n")
        for row, label in zip(features, labels, strict=True):
            handle.write(",".join([str(label), *(f"{v:.9g}" for v in row)]) + "\n")
    return str(path)


def _write_wide_parquet(path, features, labels):
    columns = {f"x{k}": features[:, k] for k in range(features.shape[1])}
    pq.write_table(pa.table({"label": labels, **columns}), path)
    return str(path)


def _files_in(workdir) -> list[str]:
    return (
        sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*")) if workdir.exists() else []
    )


@pytest.mark.parametrize("class_weights", ["auto", "none"])
def test_nan_in_a_csv_feature_stops_the_run_naming_file_column_and_row(tmp_path, class_weights):
    # Row 377 of 400: 6 steps of 32 examples would checkpoint several times before (or
    # without ever) reading it, so the whole file must be checked before training.
    features, labels = np.ones((400, 4), np.float32), np.arange(400) % 2
    features[377, 3] = np.nan
    path = write_csv(tmp_path / "train.csv", features, labels)
    workdir = tmp_path / "run"
    overrides = {**TINY, "data.path": path, "loss.class_weights": class_weights}
    result = runs.run(
        runs.train_command("default", workdir, overrides, config="configs/csv.py"), check=False
    )
    assert result.returncode != 0
    assert re.search(
        rf"CSV file {re.escape(path)}, column f3, row 377 \(line 379\): feature values must be "
        r"finite \(NaN and inf are refused\), got nan",
        result.stderr,
    ), result.stderr[-3000:]
    # One clean line, not TensorFlow's op error and a traceback around it.
    assert "StringToNumber" not in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    written = _files_in(workdir)
    # Found by the label pass, with or without class weights, before the trainer made
    # any checkpoint directory.
    assert not [name for name in written if "ckpt" in name or "checkpoint" in name], written
    assert "summary.json" not in written
    assert "export" not in written


def test_label_outside_the_binary_range_names_file_and_column(tmp_path):
    features, labels = np.ones((120, 4), np.float32), np.arange(120) % 2
    labels[101] = 2
    path = write_csv(tmp_path / "train.csv", features, labels)
    result = runs.run(
        runs.train_command(
            "default", tmp_path / "run", {**TINY, "data.path": path}, config="configs/csv.py"
        ),
        check=False,
    )
    assert result.returncode != 0
    assert re.search(
        rf"CSV file {re.escape(path)}, column label, row 101 \(line 103\): binary labels must "
        r"be 0 or 1, got 2",
        result.stderr,
    ), result.stderr[-3000:]
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_header_only_csv_names_the_file_and_writes_nothing(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("f0,label,f1\n")
    workdir = tmp_path / "run"
    result = runs.run(
        runs.train_command(
            "default", workdir, {**TINY, "data.path": str(path)}, config="configs/csv.py"
        ),
        check=False,
    )
    assert result.returncode != 0
    assert f"CSV file '{path}' has a header but no data rows" in result.stderr
    assert _files_in(workdir) == []


@pytest.mark.parametrize("source", ["csv", "parquet"])
def test_64_feature_columns_train_without_restating_num_features(tmp_path, source):
    features, labels = _wide(64)
    write = _write_wide_csv if source == "csv" else _write_wide_parquet
    path = write(tmp_path / f"wide.{source}", features, labels)
    workdir = tmp_path / "run"
    runs.run(
        runs.train_command(
            "default", workdir, {**TINY, "data.path": path}, config=f"configs/{source}.py"
        )
    )
    summary = runs.summary(workdir)
    assert summary["step"] == TINY["train.steps"]
    first_kernel = runs.final_weights(workdir)[0]
    assert first_kernel.shape == (64, 8)


def test_num_features_that_disagrees_with_the_header_names_both_numbers(tmp_path):
    features, labels = _wide(64)
    path = _write_wide_csv(tmp_path / "wide.csv", features, labels)
    workdir = tmp_path / "run"
    overrides = {**TINY, "data.path": path, "data.num_features": 32}
    result = runs.run(
        runs.train_command("default", workdir, overrides, config="configs/csv.py"), check=False
    )
    assert result.returncode != 0
    assert re.search(
        r"data.num_features is 32 but csv data .*wide\.csv' has 64 feature columns",
        result.stderr,
    ), result.stderr[-3000:]
    assert _files_in(workdir) == []


@pytest.mark.parametrize("bad_row", ["1.0,0.5,1\n", "1.0,0.5,2.0,1,7\n"])
def test_a_row_with_a_missing_or_extra_field_is_named_by_line_before_anything_is_written(
    tmp_path, bad_row
):
    path = tmp_path / "short.csv"
    rows = [f"{k % 3}.5,{k}.0,0.25,{k % 2}\n" for k in range(300)]
    rows[209] = bad_row  # line 211: the header is line 1
    path.write_text("f0,f1,f2,label\n" + "".join(rows))
    workdir = tmp_path / "run"
    result = runs.run(
        runs.train_command(
            "default", workdir, {**TINY, "data.path": str(path)}, config="configs/csv.py"
        ),
        check=False,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    fields = bad_row.count(",") + 1
    assert f"CSV file '{path}' line 211 has {fields} fields, expected 4" in result.stderr
    assert "Traceback" not in result.stderr
    assert _files_in(workdir) == []


def test_a_byte_order_mark_and_crlf_line_ends_read_like_a_plain_csv(tmp_path):
    """Excel's "CSV UTF-8" with Windows line ends: the first feature is `f0`, not
    `\\ufefff0`, in the export's deploy.json, and every row is read."""
    import json

    rows = [f"{k % 3}.5,{k}.0,0.25,{k % 2}" for k in range(300)]
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufefff0,f1,f2,label\r\n" + "\r\n".join(rows) + "\r\n").encode("utf-8"))
    workdir = tmp_path / "run"
    runs.run(
        runs.train_command(
            "default", workdir, {**TINY, "data.path": str(path)}, config="configs/csv.py"
        )
    )
    deploy = (workdir / "export" / "deploy.json").read_text()
    assert "\\ufeff" not in deploy
    assert "\ufeff" not in deploy
    example = json.loads(deploy)["saved_model"]["signatures"]["examples"]["inputs"]["examples"]
    assert example["tf.train.Example"]["features"] == ["f0", "f1", "f2"]
    assert json.loads((workdir / "summary.json").read_text())["step"] == TINY["train.steps"]
