"""Every data.source by name behind one interface: training, held-out and label batches
as a task reads them, against references computed another way (the generator called
on the example ids the split's contract names; images decoded one by one)."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from focal_dist import data
from focal_dist.configs import default
from focal_dist.data import images
from focal_dist.data.synthetic import SyntheticData
from focal_dist.distribute import InputInfo
from tests.data import image_fixtures as fx

NUM_TRAIN, NUM_EVAL, NUM_CALIBRATION = 100, 30, 21


def config_data(**fields):
    data_config = default.get_config().data
    data_config.num_features = 4
    data_config.synthetic.num_train = NUM_TRAIN
    data_config.synthetic.num_eval = NUM_EVAL
    data_config.synthetic.num_calibration = NUM_CALIBRATION
    for name, value in fields.items():
        node = data_config
        *parents, leaf = name.split(".")
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return data_config


def batches(dataset, count=None):
    """[(features, labels)] as NumPy, the first `count` or all."""
    dataset = dataset if count is None else dataset.take(count)
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def in_model_layout(label_mode, features, labels):
    if label_mode == "binary":
        return features, np.asarray(labels, np.float32).reshape(-1, 1)
    return features, labels.astype(np.float32 if label_mode == "multi_label" else np.int64)


def test_the_one_list_of_sources_is_the_registry_and_each_builds_its_own():
    every_kind = ("synthetic", *data.FILE_SOURCES, *images.SOURCES, *data.SEGMENTATION_SOURCES)
    assert every_kind == data.SOURCES
    source = data.get_source(config_data(), label_mode="binary", num_classes=1)
    assert isinstance(source, data.Source)
    assert (source.name, source.input_shape, source.class_names) == ("synthetic", (4,), None)


def test_an_unknown_source_is_refused_naming_data_source_and_the_known_names():
    with pytest.raises(
        ValueError,
        match=r"data.source must be one of synthetic, tfrecord, csv, parquet, image_tfrecord, "
        r"image_folder, segmentation_folder, segmentation_tfrecord, segmentation_synthetic; "
        r"got 'hdf5'",
    ):
        data.get_source(config_data(source="hdf5"), label_mode="binary", num_classes=1)


@pytest.mark.parametrize("name", [n for n in data.SOURCES if not n.endswith("synthetic")])
def test_a_file_source_without_data_path_names_the_field_and_the_source(name):
    with pytest.raises(ValueError, match=rf"data.path is required for data.source='{name}'"):
        data.get_source(config_data(source=name), label_mode="sparse", num_classes=4)


def test_an_unknown_split_is_refused_naming_the_known_ones():
    source = data.get_source(config_data(), label_mode="binary", num_classes=1)
    with pytest.raises(ValueError, match=r"split must be one of eval, calibration; got 'test'"):
        source.split_batches(InputInfo(0, 1, 8, global_batch_size=8), "test")


def _generator(label_mode, num_classes):
    return SyntheticData(label_mode=label_mode, num_features=4, num_classes=num_classes)


def _examples(label_mode, num_classes, ids):
    x, y = _generator(label_mode, num_classes).examples(tf.constant(ids, tf.int64))
    return in_model_layout(label_mode, x.numpy(), y.numpy())


MODES = [("binary", 1), ("multi_label", 3), ("sparse", 4)]


@pytest.mark.parametrize(("label_mode", "num_classes"), MODES)
def test_synthetic_training_batch_k_is_replica_r_slice_of_the_kth_global_batch(
    label_mode, num_classes
):
    # Pipeline 1 of 2 with 2 replicas of 4: slices 2 and 3 of each global batch of 16;
    # 100 examples give 7 global batches an epoch, the last of 4 (these slices: empty).
    info = InputInfo(1, 2, 4, 2, 16, seed=5, skip_global_batches=3)
    source = data.get_source(config_data(), label_mode=label_mode, num_classes=num_classes)
    got = batches(source.train_batches(info), 2 * 9)
    for k, (features, labels) in enumerate(got):
        step, replica = info.skip_global_batches + k // 2, k % 2
        epoch, batch = divmod(step, 7)
        order = tf.random.experimental.stateless_shuffle(
            tf.range(NUM_TRAIN, dtype=tf.int64), seed=[5, epoch]
        ).numpy()
        rows = order[batch * 16 : (batch + 1) * 16][(2 + replica) * 4 : (3 + replica) * 4]
        if not len(rows):  # past the end of the short last batch: an empty batch
            assert len(features) == len(labels) == 0
            continue
        expected = _examples(label_mode, num_classes, rows)
        np.testing.assert_array_equal(features, expected[0])
        np.testing.assert_array_equal(labels, expected[1])
        assert labels.dtype == expected[1].dtype


@pytest.mark.parametrize(("label_mode", "num_classes"), MODES)
@pytest.mark.parametrize("num_pipelines", [1, 3])
def test_synthetic_eval_and_calibration_hold_the_next_examples_each_once(
    label_mode, num_classes, num_pipelines
):
    source = data.get_source(config_data(), label_mode=label_mode, num_classes=num_classes)
    for split, first, size in [
        ("eval", NUM_TRAIN, NUM_EVAL),
        ("calibration", NUM_TRAIN + NUM_EVAL, NUM_CALIBRATION),
    ]:
        per_pipeline = [
            batches(
                source.split_batches(InputInfo(p, num_pipelines, 2, 1, 2 * num_pipelines), split)
            )
            for p in range(num_pipelines)
        ]
        assert len({len(b) for b in per_pipeline}) == 1  # the same number of steps everywhere
        # Step by step, pipeline by pipeline: the examples in order, each once.
        features = np.concatenate(
            [b[step][0] for step in range(len(per_pipeline[0])) for b in per_pipeline]
        )
        expected = _examples(label_mode, num_classes, np.arange(first, first + size))
        np.testing.assert_array_equal(features, expected[0])


def test_without_calibration_examples_there_is_no_calibration_split_and_eval_is_unchanged():
    info = InputInfo(0, 1, 8, global_batch_size=8)
    with_split = data.get_source(config_data(), label_mode="binary", num_classes=1)
    without = data.get_source(
        config_data(**{"synthetic.num_calibration": 0}), label_mode="binary", num_classes=1
    )
    assert without.split_batches(info, "calibration") is None
    for a, b in zip(
        batches(with_split.split_batches(info, "eval")),
        batches(without.split_batches(info, "eval")),
        strict=True,
    ):
        np.testing.assert_array_equal(a[0], b[0])


@pytest.mark.parametrize("num_pipelines", [1, 2, 3])
def test_synthetic_label_batches_count_every_training_label_once(num_pipelines):
    source = data.get_source(config_data(), label_mode="sparse", num_classes=4)
    labels = np.concatenate(
        [
            y.numpy()
            for p in range(num_pipelines)
            for y in source.label_batches(InputInfo(p, num_pipelines, 8))
        ]
    )
    expected = _examples("sparse", 4, np.arange(NUM_TRAIN))[1]
    np.testing.assert_array_equal(np.sort(labels), np.sort(expected))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("image_sources")
    train = fx.write_image_folder(root / "train")
    calibration = fx.write_image_folder(root / "calibration", counts=(2, 1, 1, 1))
    return str(train), str(calibration)


def _decoded_folder(folder, size):
    """(images, labels) of a class-per-folder directory, decoded one file at a time."""
    options = images.ImageOptions(image_size=size, channels=3, augment=False)
    class_names, paths, labels = data.readers.image_folder.list_image_folder(folder)
    del class_names
    pictures = [images.decode(tf.io.read_file(p), options).numpy() for p in paths]
    return np.stack(pictures), labels, paths


def test_image_folder_splits_are_their_folders_decoded_whole_each_image_once(folders):
    train, calibration = folders
    config = config_data(
        source="image_folder", path=train, calibration_path=calibration, image_size=8
    )
    source = data.get_source(config, label_mode="sparse", num_classes=4)
    assert source.input_shape == (8, 8, 3)
    assert source.class_names == list(fx.CLASS_NAMES)
    for split, folder in [("eval", train), ("calibration", calibration)]:
        per_pipeline = [
            batches(source.split_batches(InputInfo(p, 2, 2, 1, 4), split)) for p in range(2)
        ]
        got = [b[step] for step in range(len(per_pipeline[0])) for b in per_pipeline]
        expected_images, expected_labels, _ = _decoded_folder(folder, 8)
        np.testing.assert_allclose(np.concatenate([g[0] for g in got]), expected_images, atol=1e-6)
        np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), expected_labels)
    labels = [y.numpy() for p in range(3) for y in source.label_batches(InputInfo(p, 3, 4))]
    assert np.bincount(np.concatenate(labels)).tolist() == list(fx.CLASS_COUNTS)
    # Training: this pipeline's images, augmented, in the model's layout, endlessly.
    train_batches = batches(source.train_batches(InputInfo(0, 2, 4, 1, 8, seed=1)), 5)
    assert [b[0].shape for b in train_batches] == [(4, 8, 8, 3)] * 5
    assert all(b[1].dtype == np.int64 for b in train_batches)


def test_image_splits_with_other_classes_are_refused_naming_the_field(folders, tmp_path):
    train, _ = folders
    other = fx.write_image_folder(
        tmp_path / "other", counts=(1, 1, 1, 1), names=("a", "b", "c", "d")
    )
    config = config_data(source="image_folder", path=train, calibration_path=str(other))
    with pytest.raises(ValueError, match=r"data.calibration_path .* has classes \['a', 'b'"):
        _ = data.get_source(config, label_mode="sparse", num_classes=4).class_names


def test_image_tfrecord_eval_and_labels_are_its_records(tmp_path):
    labels = [3, 0, 1, 1, 2, 0, 3]
    path = fx.write_image_tfrecords(tmp_path, labels, num_files=1)
    config = config_data(source="image_tfrecord", path=path, image_size=12)
    source = data.get_source(config, label_mode="sparse", num_classes=4)
    assert source.split_batches(InputInfo(0, 1, 4, 1, 4), "calibration") is None
    got = batches(source.split_batches(InputInfo(0, 1, 4, 1, 4), "eval"))
    options = images.ImageOptions(image_size=12, augment=False)
    expected = [
        images.decode(tf.constant(fx.encode(p, f)), options).numpy()
        for p, f in zip(fx.images(7, seed=7), ["png", "jpeg"] * 4, strict=False)
    ]
    np.testing.assert_allclose(np.concatenate([g[0] for g in got]), np.stack(expected), atol=1e-6)
    np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), labels)
    counted = np.concatenate([y.numpy() for y in source.label_batches(InputInfo(0, 1, 4))])
    np.testing.assert_array_equal(counted, labels)


def _prediction_rows(source, path, num_pipelines):
    """{(file, row): image} over all pipelines; a row seen twice fails."""
    seen = {}
    for p in range(num_pipelines):
        for batch in source.prediction_batches(path, InputInfo(p, num_pipelines, 3), 3):
            for file, row, image in zip(
                batch["file"].numpy(), batch["row"].numpy(), batch["features"].numpy(), strict=True
            ):
                key = (file.decode(), int(row))
                assert key not in seen, f"{key} twice with {num_pipelines} pipelines"
                seen[key] = image
    return seen


@pytest.mark.parametrize("num_pipelines", [1, 2, 3])
def test_image_prediction_rows_are_every_image_once_decoded_as_in_evaluation(
    folders, tmp_path_factory, num_pipelines
):
    train, _ = folders
    config = config_data(source="image_folder", path=train, image_size=8)
    source = data.get_source(config, label_mode="sparse", num_classes=4)
    pictures, _, paths = _decoded_folder(train, 8)
    seen = _prediction_rows(source, train, num_pipelines)
    assert sorted(seen) == sorted((path, 0) for path in paths)
    for path, picture in zip(paths, pictures, strict=True):
        np.testing.assert_allclose(seen[(path, 0)], picture, atol=1e-6)

    # Records of 2 files of 5 and 4 images: split by file, or by record for 3 pipelines.
    directory = tmp_path_factory.mktemp(f"records{num_pipelines}")
    pattern = fx.write_image_tfrecords(directory, list(range(9)), num_files=2, label_key="other")
    config = config_data(source="image_tfrecord", path=pattern, image_size=8)
    config.image_label_key = "other"
    source = data.get_source(config, label_mode="sparse", num_classes=9)
    seen = _prediction_rows(source, pattern, num_pipelines)
    records = [
        (file, r)
        for file in sorted(tf.io.gfile.glob(pattern))
        for r, _ in enumerate(tf.data.TFRecordDataset(file))
    ]
    assert len(records) == 9
    assert sorted(seen) == records


def test_a_flat_folder_or_a_glob_of_images_is_scored_without_class_folders(folders, tmp_path):
    # Batch prediction builds the run's source on the files to score (focal_dist.predict):
    # those have no class folders, and the source must not ask for them.
    train, _ = folders
    pictures, _, paths = _decoded_folder(train, 8)
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, path in enumerate(paths):
        (flat / f"{i:02d}{Path(path).suffix}").write_bytes(Path(path).read_bytes())
    for where in (str(flat), str(flat / "*")):
        config = config_data(source="image_folder", path=where, image_size=8)
        source = data.get_source(config, label_mode="sparse", num_classes=4)
        seen = _prediction_rows(source, where, 2)
        assert len(seen) == len(paths)
        by_name = {Path(file).name: image for (file, _), image in seen.items()}
        for i, (path, picture) in enumerate(zip(paths, pictures, strict=True)):
            np.testing.assert_allclose(by_name[f"{i:02d}{Path(path).suffix}"], picture, atol=1e-6)
