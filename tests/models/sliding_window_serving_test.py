"""Sliding-window inference and the small-component filter inside a SavedModel signature
of any image size, served by TensorFlow alone in a fresh process (no Keras, no
focal_dist), as TF Serving would."""

import keras
import numpy as np
import tensorflow as tf

from focal_dist.models import sliding_window as sw
from focal_dist.models import unet
from focal_dist.tasks import components
from tests.serving import fresh_process

WINDOW, NUM_CLASSES, MIN_PIXELS = 64, 2, 5


def _outputs(model, image):
    logits = sw.sliding_window_logits(
        lambda x: model(x, training=False),
        image,
        window=WINDOW,
        window_batch=32,
        num_classes=NUM_CLASSES,
    )
    decisions = components.remove_small_components(
        tf.argmax(logits, axis=-1), MIN_PIXELS, NUM_CLASSES
    )
    return {"logits": logits, "decisions": decisions}


def _export(model, directory):
    def serving_default(image):
        return _outputs(model, image)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default", serving_default, input_signature=[tf.TensorSpec([None, None, 1])]
    )
    archive.write_out(str(directory), verbose=False)


def test_saved_model_infers_images_of_any_size_in_a_fresh_process(tmp_path):
    """1000x700 (not a multiple of the window), 37x53 (odd sides the U-Net itself refuses)
    and 20x9 (smaller than the window): the served logits are the in-process ones, and so
    are the class ids after components under 5 pixels are dropped."""
    model = unet.build(
        num_outputs=NUM_CLASSES, input_shape=(WINDOW, WINDOW, 1), widths=(4, 8), seed=3
    )
    _export(model, tmp_path / "saved_model")
    rng = np.random.default_rng(0)
    jobs, expected = [], {}
    for height, width in ((1000, 700), (37, 53), (20, 9)):
        image = rng.uniform(size=(height, width, 1)).astype(np.float32)
        name = f"{height}x{width}"
        np.save(tmp_path / f"{name}.npy", image)
        jobs.append(
            {
                "directory": str(tmp_path / "saved_model"),
                "signature": "serving_default",
                "input": "image",
                "values": str(tmp_path / f"{name}.npy"),
                "output": str(tmp_path / f"{name}.npz"),
            }
        )
        expected[name] = {k: v.numpy() for k, v in _outputs(model, image).items()}
    modules = fresh_process.serve(tmp_path, jobs)
    assert modules == []
    for name, outputs in expected.items():
        served = np.load(tmp_path / f"{name}.npz")
        assert served["logits"].shape == outputs["logits"].shape
        np.testing.assert_allclose(served["logits"], outputs["logits"], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(served["decisions"], outputs["decisions"])
