"""Binary labels from Parquet files read with pyarrow: `label` plus numeric columns.

    python -m focal_dist.train --config=configs/parquet.py --workdir=runs/parquet \
        --config.data.path='train-*.parquet'

The number of features is read from the schema (every column but the label columns);
a `data.num_features` other than 0 must match it. A NaN or inf value, or a label
outside the task's range, stops the run naming the file, the column and the row.
Needs pyarrow: `pip install 'focal-dist[parquet]'` (docs/data.md, "Parquet").
"""

from focal_dist.configs import default


def get_config():
    config = default.get_config()
    config.data.source = "parquet"
    config.data.path = ""
    config.data.eval_path = ""
    config.data.label_column = "label"
    config.data.num_features = 0  # 0: from the files
    return config
