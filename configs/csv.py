"""Binary labels from CSV files with a header row: `label` plus numeric feature columns.

    python -m focal_dist.train --config=configs/csv.py --workdir=runs/csv \
        --config.data.path='train-*.csv' --config.data.eval_path=eval.csv \
        --config.data.num_features=32
"""

from configs import default


def get_config():
    config = default.get_config()
    config.data.source = "csv"
    config.data.path = ""  # required: file, glob or comma-separated list
    config.data.eval_path = ""  # default: data.path
    config.data.label_column = "label"
    return config
