"""Binary labels from CSV files with a header row: `label` plus numeric feature columns.

    python -m focal_dist.train --config=configs/csv.py --workdir=runs/csv \
        --config.data.path='train-*.csv' --config.data.eval_path=eval.csv

The number of features is read from the header (every column but the label columns);
a `data.num_features` other than 0 must match it. A NaN or inf value, or a label
outside the task's range, stops the run naming the file, the column and the row.
"""

from focal_dist.configs import default


def get_config():
    config = default.get_config()
    config.data.source = "csv"
    config.data.path = ""  # required: file, glob or comma-separated list
    config.data.eval_path = ""  # default: data.path
    config.data.label_column = "label"
    config.data.num_features = 0  # 0: from the files
    return config
