"""One Horovod rank: the global mean in a tf.function whose count is a constant on rank 0
(a static batch size) and a runtime value on rank 1, called three times."""

import json
import sys

import tensorflow as tf

from focal_dist import losses
from focal_dist.distribute import get_backend


def main():
    backend = get_backend("horovod")
    rank = backend.worker_index
    values = tf.constant([1.0, 2.0, 3.0, 4.0][: 4 - rank])

    def share(per_example):
        return losses.compute_global_loss(per_example, backend=backend)

    # Rank 0 traces a static [4]: its count, 4, is a constant of the graph.
    spec = [tf.TensorSpec([None], tf.float32)] if rank else None
    function = tf.function(share, input_signature=spec)
    shares = [float(function(values)) for _ in range(3)]
    with open(sys.argv[1] + f".{rank}", "w") as handle:
        json.dump(shares, handle)


if __name__ == "__main__":
    main()
