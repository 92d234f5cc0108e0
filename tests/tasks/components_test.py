"""8-connected components in TF graph ops against scipy.ndimage.label (3x3 structure)."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from focal_dist.tasks import components

EIGHT = np.ones((3, 3), int)


def _scipy_labels(mask: np.ndarray) -> np.ndarray:
    """Our labelling from SciPy's: 1 + the largest flat index of each component."""
    labels, count = ndimage.label(mask, structure=EIGHT)
    flat = np.arange(mask.size).reshape(mask.shape) + 1
    largest = ndimage.maximum(flat, labels, index=np.arange(1, count + 1))
    return np.concatenate([[0], np.asarray(largest, int)])[labels]


def _serpentine(side: int) -> np.ndarray:
    """One path through every other row: side^2 / 2 pixels long, the worst case for
    label propagation without pointer jumping."""
    mask = np.zeros((side, side), bool)
    mask[::2] = True
    for i, row in enumerate(range(1, side, 2)):
        mask[row, -1 if i % 2 == 0 else 0] = True
    return mask


def _masks():
    rng = np.random.default_rng(0)
    checkerboard = (np.indices((9, 12)).sum(axis=0) % 2).astype(bool)  # diagonal touches
    diagonal_pairs = np.zeros((6, 6), bool)
    diagonal_pairs[[0, 1, 3, 4], [0, 1, 4, 3]] = True  # two 2-pixel diagonal components
    cases = {
        "empty": np.zeros((17, 23), bool),
        "full": np.ones((17, 23), bool),  # one giant component
        "one_pixel": np.ones((1, 1), bool),
        "one_row": rng.uniform(size=(1, 50)) < 0.6,
        "one_column": rng.uniform(size=(50, 1)) < 0.6,
        "checkerboard": checkerboard,
        "diagonal_pairs": diagonal_pairs,
        "serpentine": _serpentine(64),
        "serpentine_reversed": _serpentine(64)[::-1, ::-1],
        "1000x700": rng.uniform(size=(1000, 700)) < 0.45,  # near percolation: large, tortuous
    }
    for density in (0.05, 0.3, 0.5, 0.7):
        cases[f"random_{density}"] = rng.uniform(size=(64, 80)) < density
    return cases


@pytest.mark.parametrize(("name", "mask"), list(_masks().items()))
def test_labels_are_scipy_components_numbered_by_their_largest_flat_index(name, mask):
    labels, _ = components.label_components(mask[None])
    np.testing.assert_array_equal(labels.numpy()[0], _scipy_labels(mask))


def test_maps_of_a_batch_never_join_and_sizes_match_scipy():
    rng = np.random.default_rng(1)
    masks = rng.uniform(size=(5, 31, 47)) < 0.4
    masks[2] = True  # a full map beside sparse ones
    labels = components.label_components(masks)[0]
    sizes = components.component_sizes(labels).numpy()
    for mask, label, size in zip(masks, labels.numpy(), sizes, strict=True):
        np.testing.assert_array_equal(label, _scipy_labels(mask))
        reference, _ = ndimage.label(mask, structure=EIGHT)
        expected = np.where(mask, np.bincount(reference.ravel())[reference], 0)
        np.testing.assert_array_equal(size, expected)


def test_a_long_path_takes_a_logarithmic_number_of_iterations():
    """A 256x256 serpentine is one path of 33,000 pixels; propagation alone would take
    that many iterations, hooking and pointer jumping take a few dozen."""
    mask = _serpentine(256)
    labels, iterations = components.label_components(mask[None])
    assert len(np.unique(labels.numpy()[0][mask])) == 1
    assert int(iterations) <= 40


def test_dynamic_shapes_in_a_tf_function():
    label = tf.function(
        components.label_components, input_signature=[tf.TensorSpec([None, None, None], tf.bool)]
    )
    rng = np.random.default_rng(2)
    for shape in ((1, 37, 53), (3, 8, 5), (2, 1, 1)):
        masks = rng.uniform(size=shape) < 0.5
        labels, _ = label(masks)
        for mask, got in zip(masks, labels.numpy(), strict=True):
            np.testing.assert_array_equal(got, _scipy_labels(mask))


def _remove_reference(mask, min_pixels, num_classes):
    out = mask.copy()
    for c in range(1, num_classes):
        labels, _ = ndimage.label(mask == c, structure=EIGHT)
        sizes = np.bincount(labels.ravel())
        floor = min_pixels if np.ndim(min_pixels) == 0 else min_pixels[c - 1]
        out[(labels > 0) & (sizes[labels] < floor)] = 0
    return out


@pytest.mark.parametrize("min_pixels", [0, 1, 3, 8, [2, 9]])
def test_remove_small_components_matches_scipy(min_pixels):
    rng = np.random.default_rng(3)
    mask = rng.choice([0, 1, 2, 255], p=[0.6, 0.2, 0.15, 0.05], size=(120, 90))
    got = components.remove_small_components(mask, min_pixels, 3).numpy()
    np.testing.assert_array_equal(got, _remove_reference(mask, min_pixels, 3))
    batch = np.stack([mask, mask[::-1]])
    got = components.remove_small_components(batch, min_pixels, 3).numpy()
    np.testing.assert_array_equal(got[1], _remove_reference(mask[::-1], min_pixels, 3))


def test_components_of_one_class_ignore_the_other_class_beside_them():
    mask = np.array([[1, 2, 1], [2, 1, 2], [1, 2, 1]])  # class 1: an X of 5, class 2: a ring of 4
    np.testing.assert_array_equal(components.remove_small_components(mask, 4, 3), mask)
    np.testing.assert_array_equal(
        components.remove_small_components(mask, [6, 4], 3), np.where(mask == 1, 0, mask)
    )
