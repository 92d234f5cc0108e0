"""data.non_finite = "skip" the way a user with a dirty table meets it: the CLI trains on
CSV and Parquet files whose bad rows fall in every worker's shard, under every
distribution; the rows dropped are counted per file like NumPy counts them, and the
class-weight histogram counts exactly the rows that train."""

import re

import numpy as np
import pytest

from tests.training import runs

pytestmark = pytest.mark.slow

ROWS = 900


def _table(seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, 4)).astype(np.float32)
    y = (x[:, 0] > 1.0).astype(np.float32)
    bad = rng.choice(ROWS, size=37, replace=False)  # spread over every shard
    x[bad[:20], 1] = np.nan
    x[bad[20:30], 3] = np.inf
    y[bad[30:]] = 3.0  # out of range for binary labels
    return x, y, bad


def _write(source, path, x, y):
    if source == "csv":
        lines = ["label,f0,f1,f2,f3"]
        for label, values in zip(y, x, strict=True):
            lines.append(",".join([repr(float(label)), *(repr(float(v)) for v in values)]))
        path.write_text("\n".join(lines) + "\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {"label": y, **{f"f{i}": x[:, i] for i in range(4)}}
        pq.write_table(pa.table(columns), path, row_group_size=200)


@pytest.mark.parametrize(
    ("distribution", "source"),
    [("default", "csv"), ("mirrored", "parquet"), ("multiworker", "csv"), ("horovod", "parquet")],
)
def test_bad_rows_are_skipped_and_counted_once_over_all_workers(distribution, source, tmp_path):
    files, expected, clean_positives, clean_rows = [], {}, 0, 0
    for k in range(2):
        x, y, bad = _table(k)
        path = tmp_path / f"train-{k}.{source}"
        _write(source, path, x, y)
        files.append(str(path))
        expected[str(path)] = len(bad)
        keep = np.ones(ROWS, bool)
        keep[bad] = False
        clean_rows += keep.sum()
        clean_positives += int(y[keep].sum())
    overrides = {
        "data.source": source,
        "data.path": ",".join(files),
        "data.non_finite": "skip",
        "train.steps": 20,
        "train.eval_every": 0,
        "train.checkpoint_every": 20,
        "data.synthetic.num_calibration": 0,
    }
    result = runs.run(
        runs.train_command(distribution, tmp_path / "run", overrides, "configs/csv.py")
    )
    skipped = runs.summary(tmp_path / "run")["data"]["skipped_rows"]
    assert skipped["rows"] == sum(expected.values())
    assert {f: v["rows"] for f, v in skipped["files"].items()} == expected
    first = skipped["files"][files[0]]["columns"]
    assert first == {"label": 7, "f1": 20, "f3": 10}
    counts = re.search(r"label histogram \[(\d+), (\d+)\]", result.stderr + result.stdout)
    assert counts, (result.stderr + result.stdout)[-3000:]
    assert (int(counts.group(1)), int(counts.group(2))) == (
        clean_rows - clean_positives,
        clean_positives,
    )
