"""Records that cannot be decoded, kept in the stream with the decoder's message.

Batch prediction must score every good file and name every bad one (a truncated PNG, a
text file named `.png`, a 0-byte JPEG) with its reason. tf.data has no try/except:
`ignore_errors` drops a failing element without a trace, and a failing `map` ends the
whole pipeline. `decode_or_flag` decodes groups of records in a nested dataset with
`ignore_errors`, finds which positions of the group are missing, and puts them back
with their decoded fields zero and `"error"` the decoder's message, so that the writer
can list them and the order and count of rows stay those of the records.

The decoder runs once per good record, inside the pipeline (no second read of the
files); it runs a second time, eagerly, only for a record that failed, to get its
message. Measured on 2 cores with 96x96 PNGs: about 0.15 ms of CPU per image on top of
the 0.5 ms of decoding and resizing (docs/benchmarks.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import tensorflow as tf

ERROR = "error"  # the key of the decoder's message; "" when the record decoded
# Records decoded per nested dataset: its fixed cost spread over the group, while groups
# still run in parallel.
GROUP_SIZE = 32


def decode_or_flag(
    records: tf.data.Dataset,
    *,
    keep: Callable[..., dict],
    decode: Callable[..., dict],
    group_size: int = GROUP_SIZE,
) -> tf.data.Dataset:
    """`{**keep(*record), **decode(*record), "error": ""}` for each record, in order;
    a record `decode` fails on gives `keep(*record)`, zeros for `decode`'s fields and
    `"error"` the decoder's message (`decoder_message`).

    Args:
      records: a dataset of tuples (for example `(file, row, encoded image)`).
      keep: record -> dict of what needs no decoding (its file, row, name); it must not fail.
      decode: record -> dict of tensors of static shape (the decoded image, its size).
      group_size: records decoded per nested dataset.
    """

    # No tensor-dependent Python control flow here: autograph's rewrite is pure cost.
    @tf.autograph.experimental.do_not_convert
    def split(*record):
        return keep(*record), record

    @tf.autograph.experimental.do_not_convert
    def decode_one(position, record):
        return position, decode(*record)

    @tf.autograph.experimental.do_not_convert
    def group(kept, record):
        count = tf.shape(tf.nest.flatten(record)[0])[0]
        positions = tf.range(count)
        decoded = (
            tf.data.Dataset.from_tensor_slices((positions, record))
            .map(decode_one)
            .ignore_errors()
            .batch(group_size)
        )
        # One batch of the records that decoded, or (when none did) the empty one.
        empty = tf.nest.map_structure(
            lambda spec: tf.zeros([0, *spec.shape[1:]], spec.dtype), decoded.element_spec
        )
        good, values = (
            decoded.concatenate(tf.data.Dataset.from_tensors(empty)).take(1).get_single_element()
        )
        failed = tf.size(good) < count

        def scattered():
            def scatter(value):
                shape = tf.concat([[count], tf.shape(value)[1:]], 0)
                return tf.ensure_shape(tf.scatter_nd(good[:, None], value, shape), value.shape)

            return tf.nest.map_structure(scatter, values)

        values = tf.cond(failed, scattered, lambda: values)
        errors = tf.cond(
            failed,
            lambda: _messages(decode, record, good, count),
            lambda: tf.fill([count], ""),
        )
        return {**kept, **values, ERROR: errors}

    grouped = records.map(split).batch(group_size)
    checked = grouped.map(group, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return checked.unbatch()


def _messages(decode, record, good, count) -> tf.Tensor:
    """string [count]: the decoder's message at each position not in `good`, else ""."""
    decoded = tf.scatter_nd(good[:, None], tf.ones_like(good), [count]) > 0
    bad = tf.where(tf.logical_not(decoded))[:, 0]
    flat = [tf.gather(part, bad) for part in tf.nest.flatten(record)]

    def explain(*parts):
        # Eager, and only for the records that failed: their message, which
        # ignore_errors discarded.
        rows = tf.nest.pack_sequence_as(record, parts)
        messages = []
        for i in range(int(tf.shape(parts[0])[0])):
            try:
                decode(*tf.nest.map_structure(lambda part, i=i: part[i], rows))
                messages.append("could not be decoded in the pipeline (decoded when retried)")
            except tf.errors.OpError as error:
                messages.append(decoder_message(error))
        return tf.constant(messages, tf.string, shape=[len(messages)])

    messages = tf.py_function(explain, flat, tf.string)
    messages.set_shape([None])
    return tf.scatter_nd(bad[:, None], messages, [count])


def decoder_message(error: tf.errors.OpError) -> str:
    """A decoder's error as one line: the op's own words ("Invalid PNG data, size 300"),
    or a failed assertion's data, without TensorFlow's node and op decorations."""
    message = error.message
    if "Summarized data:" in message:
        items = message.split("Summarized data:", 1)[1].strip().splitlines()
        text = " ".join(i[2:-1] if i[:2] in ("b'", 'b"') else i for i in items)
        return text.lstrip(": ").strip()
    line = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    return re.sub(r"\{\{[^}]*\}\}|\[Op:.*$", "", line).strip()
