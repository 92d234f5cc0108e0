"""One interface over tf.distribute strategies and Horovod.

    backend = focal_dist.distribute.get_backend("mirrored", num_cpu_devices=4)

Backends: "default" (one device), "mirrored" (local GPUs, or N logical CPU devices),
"multiworker" (MultiWorkerMirroredStrategy from TF_CONFIG), "horovod" (Gloo or MPI).
"""

from __future__ import annotations

from focal_dist.distribute.base import Backend, InputInfo, per_replica_batch_size

BACKENDS = ("default", "mirrored", "multiworker", "horovod")


def get_backend(name: str, **options) -> Backend:
    """Builds the backend called `name` ("default", "mirrored", "multiworker", "horovod").

    Options: mirrored takes `num_cpu_devices`; multiworker takes `communication`
    ("auto", "ring", "nccl"). Unknown names or options raise ValueError.
    """
    options = {key: value for key, value in options.items() if value is not None}
    allowed = {
        "default": set(),
        "mirrored": {"num_cpu_devices"},
        "multiworker": {"communication"},
        "horovod": set(),
    }
    if name not in allowed:
        raise ValueError(f"distribution must be one of {', '.join(BACKENDS)}; got {name!r}")
    unknown = set(options) - allowed[name]
    if unknown:
        raise ValueError(
            f"distribution {name!r} takes options {sorted(allowed[name])}; got {sorted(unknown)}"
        )
    if name == "horovod":
        from focal_dist.distribute.horovod_backend import HorovodBackend

        return HorovodBackend()
    from focal_dist.distribute import strategy_backend

    if name == "default":
        return strategy_backend.default_backend()
    if name == "mirrored":
        return strategy_backend.mirrored_backend(**options)
    return strategy_backend.MultiWorkerBackend(**options)


__all__ = ["BACKENDS", "Backend", "InputInfo", "get_backend", "per_replica_batch_size"]
