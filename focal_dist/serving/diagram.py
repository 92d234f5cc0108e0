"""A reliability diagram drawn with NumPy: uint8 [size, size, 3] for tf.summary.image.

Upper panel, x = predicted probability, y = observed positive rate, both 0 to 1 with
grid lines every 0.2: one blue bar per bin with positives, up to its positive rate Y_b / n_b,
a red line across it at its mean probability S_b / n_b (the gap is that bin's
miscalibration), and the grey diagonal of perfect calibration. Lower strip: the share of
examples per bin, on a square-root scale so that sparse bins stay visible. No text
(no font without matplotlib): TensorBoard shows the tag beside it.
"""

from __future__ import annotations

import numpy as np

_WHITE, _GRID, _AXIS = (255, 255, 255), (225, 225, 225), (120, 120, 120)
_BAR, _MEAN, _SHARE = (66, 133, 244), (219, 68, 55), (150, 150, 150)


def reliability_diagram(bins, *, size: int = 192) -> np.ndarray:
    """uint8 [size, size, 3] image of `bins` (a `reliability.Bins`); size >= 64."""
    if size < 64:
        raise ValueError(f"size must be >= 64 pixels; got {size!r}")
    count = np.asarray(bins.count, np.float64)
    num_bins = len(count)
    image = np.empty((size, size, 3), np.uint8)
    image[:] = _WHITE
    margin = size // 16
    left, width = margin, size - 2 * margin
    strip = (size - 3 * margin) // 5
    top, height = margin, size - 3 * margin - strip
    strip_top = top + height + margin

    def row(value: float, panel_top: int, panel_height: int) -> int:
        return panel_top + int(round((1.0 - value) * (panel_height - 1)))

    def column(value: float) -> int:
        return left + int(round(value * (width - 1)))

    for tick in np.linspace(0.0, 1.0, 6):
        image[row(tick, top, height), left : left + width] = _GRID
        image[top : top + height, column(tick)] = _GRID
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.asarray(bins.positive_sum) / count
        mean = np.asarray(bins.probability_sum) / count
    share = np.sqrt(count / max(count.sum(), 1.0))
    drawn = []
    for b in range(num_bins):
        x0, x1 = column(b / num_bins) + 1, column((b + 1) / num_bins) - 1
        if count[b] == 0 or x1 < x0:
            continue
        drawn.append((x0, x1, row(np.clip(mean[b], 0, 1), top, height)))
        if rate[b] > 0:
            image[row(rate[b], top, height) : top + height, x0 : x1 + 1] = _BAR
        image[row(share[b], strip_top, strip) : strip_top + strip, x0 : x1 + 1] = _SHARE
    steps = np.linspace(0.0, 1.0, 4 * width)
    image[[row(v, top, height) for v in steps], [column(v) for v in steps]] = _AXIS
    for x0, x1, y in drawn:  # over the diagonal: the marks are what is read
        image[max(y - 1, top) : y + 1, x0 : x1 + 1] = _MEAN
    for panel_top, panel_height in ((top, height), (strip_top, strip)):
        image[panel_top + panel_height - 1, left : left + width] = _AXIS
        image[panel_top : panel_top + panel_height, left] = _AXIS
    return image
