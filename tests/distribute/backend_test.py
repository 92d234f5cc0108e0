"""get_backend and the in-process backends (default, mirrored over logical CPUs)."""

import numpy as np
import pytest
import tensorflow as tf

from focal_dist.distribute import get_backend


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("tpu", {}, r"distribution must be one of default, mirrored, multiworker, horovod.*'tpu'"),
        ("default", {"num_cpu_devices": 2}, r"'default' takes options \[\].*num_cpu_devices"),
        ("mirrored", {"num_cpu_devices": 64}, r"num_cpu_devices=64.*initialised with 4"),
    ],
)
def test_bad_backend_requests_say_what_was_expected(name, options, match):
    # The runtime starts with the conftest's 4 logical CPUs before the request: alone,
    # this file would otherwise let the request configure 64 (it passed only in order).
    tf.config.list_logical_devices("CPU")
    with pytest.raises(ValueError, match=match):
        get_backend(name, **options)


def test_multiworker_without_tf_config_is_refused(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        get_backend("multiworker")


def test_input_info_splits_the_global_batch_and_rejects_uneven_splits():
    backend = get_backend("mirrored", num_cpu_devices=4)
    info = backend.input_info(64)
    assert (info.per_replica_batch_size, info.replicas_per_pipeline, info.num_pipelines) == (
        16,
        4,
        1,
    )
    with pytest.raises(ValueError, match=r"global_batch_size 30 .* 4 replicas"):
        backend.input_info(30)


@pytest.mark.parametrize("name", ["default", "mirrored"])
def test_distributed_dataset_feeds_every_replica_and_sums_to_the_global_batch(name):
    backend = get_backend(name, num_cpu_devices=4) if name == "mirrored" else get_backend(name)
    values = np.arange(40, dtype=np.float32)

    def pipeline(info):
        return tf.data.Dataset.from_tensor_slices(values).batch(info.per_replica_batch_size)

    dataset = backend.distribute_dataset(pipeline, global_batch_size=8)

    @tf.function
    def step(batch):
        per_replica = backend.run(lambda x: (tf.reduce_sum(x), tf.size(x)), args=(batch,))
        return backend.reduce_sum(per_replica)

    totals = [step(batch) for batch in dataset]
    assert len(totals) == 5
    assert sum(float(t[0]) for t in totals) == values.sum()
    assert all(int(t[1]) == 8 for t in totals)
    assert backend.is_chief
    assert backend.num_replicas_in_sync == (4 if name == "mirrored" else 1)
