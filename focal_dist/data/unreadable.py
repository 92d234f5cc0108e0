"""Records that cannot be decoded, kept in the stream with the decoder's message.

Batch prediction must score every good file and name every bad one (a truncated PNG, a
text file named `.png`, a 0-byte JPEG) with its reason. tf.data has no try/except:
`ignore_errors` drops a failing element without a trace, and a failing `map` ends the
whole pipeline. `decode_or_flag` decodes each batch of records in a nested dataset with
`ignore_errors`, finds which positions of the batch are missing, and puts them back with
their decoded fields zero and `"error"` the decoder's message, so that the writer can
list them and the order and count of rows stay those of the records.

The decoder runs once per good record, inside the pipeline (no second read of the
files); it runs a second time, eagerly, only for a record that failed, to get its
message. Its cost beside a plain parallel `map` of the same decoder is within the noise
of a shared 2-core machine (docs/benchmarks.md, bench/prediction_decode.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import tensorflow as tf

ERROR = "error"  # the key of the decoder's message; "" when the record decoded


def decode_or_flag(
    records: tf.data.Dataset,
    *,
    keep: Callable[..., dict],
    decode: Callable[..., dict],
    batch_size: int,
) -> tf.data.Dataset:
    """Batches of `batch_size` records (the last may be short), in order:
    `{**keep(*records), **decode(*record) of each, "error": ""}`; a record `decode` fails
    on has zeros for `decode`'s fields and `"error"` the decoder's message
    (`decoder_message`).

    Args:
      records: a dataset of tuples (for example `(file, row, encoded image)`).
      keep: a batch of records -> dict of what needs no decoding (their files, rows,
        names); it must only pick fields, and must not fail.
      decode: one record -> dict of tensors of static shape (the decoded image, its size).
      batch_size: records per batch.
    """

    # No tensor-dependent Python control flow here: autograph's rewrite is pure cost.
    @tf.autograph.experimental.do_not_convert
    def decode_one(position, record):
        return position, decode(*record)

    @tf.autograph.experimental.do_not_convert
    def decode_batch(*record):
        count = tf.shape(tf.nest.flatten(record)[0])[0]
        decoded = (
            tf.data.Dataset.from_tensor_slices((tf.range(count), record))
            .map(decode_one, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .ignore_errors()
            .batch(batch_size)
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
        return {**keep(*record), **values, ERROR: errors}

    # Records decode in parallel within a batch, and batches in parallel (tf.data's
    # autotuning bounds them by the cores and its memory budget).
    return records.batch(batch_size).map(
        decode_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )


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
