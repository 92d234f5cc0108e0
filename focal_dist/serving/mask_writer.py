"""Batch prediction of a per-pixel (segmentation) export: one PNG mask per image.

For each image the argmax class of every pixel at the model's size, resized back to
the image's own size by nearest neighbour (as the masks of the eval path are resized,
`tf.image.resize(method="nearest")`), is written as an 8-bit single-channel PNG of
class ids:

    DIR/masks/<name>.png     <name>: the image's path under --data without its
                             extension (a folder: the masks pair with the images by
                             stem, as segmentation_folder reads them), or
                             <TFRecord file>/<record index>
    DIR/part-<worker>-of-<workers>-<k>.csv
                             file, row, mask (the PNG's path under DIR), pixels_<k>
                             (the mask's pixels of class k)

A mask is written beside and renamed, so it is whole or absent; a resumed prediction
rewrites the masks of the rows whose part was not committed. An image that cannot be
decoded gets no mask (the manifest lists it as failed).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from focal_dist.serving.mask_export import LABEL_MODE
from focal_dist.serving.prediction_output import PartWriter

MASKS = "masks"

__all__ = ["LABEL_MODE", "MASKS", "MaskScorer", "MaskWriter"]


class MaskScorer:
    """logits [B, H, W, K] -> {decisions: uint8 [B, H, W] class ids (argmax)}."""

    def __init__(self, deploy: dict):
        self.label_mode = deploy["label_mode"]
        self.num_outputs = int(deploy["num_outputs"])

    def __call__(self, logits) -> dict:
        # Class ids fit in 8 bits (MaskOptions: at most 255 classes): a quarter of int32's
        # bytes leave the replicas.
        return {"decisions": tf.cast(tf.argmax(logits, axis=-1), tf.uint8)}

    def writer(self, directory: str, worker: int, num_workers: int, **options) -> MaskWriter:
        return MaskWriter(directory, worker, num_workers, self.num_outputs, **options)


class MaskWriter(PartWriter):
    """One worker's masks and its part files (each whole when `commit` renames it)."""

    def __init__(self, directory: str, worker: int, num_workers: int, num_classes: int, **options):
        header = ["mask", *(f"pixels_{k}" for k in range(num_classes))]
        super().__init__(directory, worker, num_workers, header, **options)
        self.directory = directory
        self.num_classes = num_classes

    def write(self, outputs: dict) -> None:
        """One replica's batch: numpy `file`, `row`, `name`, `size` [B, 2], `decisions`."""
        for file, row, name, size, decisions in zip(
            outputs["file"],
            outputs["row"],
            outputs["name"],
            outputs["size"],
            outputs["decisions"],
            strict=True,
        ):
            mask = tf.image.resize(decisions[..., None], size, method="nearest")
            relative = os.path.join(MASKS, f"{name.decode()}.png")
            _write_bytes(os.path.join(self.directory, relative), tf.io.encode_png(mask).numpy())
            pixels = np.bincount(mask.numpy().ravel(), minlength=self.num_classes)
            self._writer.writerow([file.decode(), int(row), relative, *pixels.tolist()])


def _write_bytes(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.partial"
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)
