"""One interface over tf.distribute strategies and Horovod (see base.Backend)."""

from focal_dist.distribute.base import Backend

__all__ = ["Backend"]
