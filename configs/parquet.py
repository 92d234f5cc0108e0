"""Binary labels from Parquet files read by tensorflow-io: `label` plus numeric columns.

    python -m focal_dist.train --config=configs/parquet.py --workdir=runs/parquet \
        --config.data.path='train-*.parquet' --config.data.num_features=32
"""

from configs import default


def get_config():
    config = default.get_config()
    config.data.source = "parquet"
    config.data.path = ""
    config.data.eval_path = ""
    config.data.label_column = "label"
    return config
